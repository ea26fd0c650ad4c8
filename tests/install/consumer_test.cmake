# cmake -DMODE=package|subdirectory -DSOURCE_DIR=… -DBUILD_DIR=… -DWORK_DIR=… -P consumer_test.cmake
# Configures, builds and runs tests/consumer/ against tapegrad, failing on any step.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

set(flags "")
if(SANITIZE_FLAGS)
  string(REPLACE ";" " " flags "${SANITIZE_FLAGS}")
endif()
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${flags}")

if(MODE STREQUAL "package")
  set(prefix ${WORK_DIR}/prefix)
  set(build ${WORK_DIR}/consumer-package)
  file(REMOVE_RECURSE ${prefix} ${build})
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  foreach(f include/tapegrad/tapegrad.hpp include/tapegrad/core/tape.hpp include/tapegrad/nn.hpp
            lib/cmake/tapegrad/tapegradConfig.cmake lib/cmake/tapegrad/tapegradConfigVersion.cmake
            lib/cmake/tapegrad/tapegradTargets.cmake lib/pkgconfig/tapegrad.pc
            include/tapegrad/dist.hpp include/tapegrad/dist/ddp.hpp)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "cmake --install did not create ${prefix}/${f}")
    endif()
  endforeach()
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${build} ${common} -DCMAKE_PREFIX_PATH=${prefix})
  run(${CMAKE_COMMAND} --build ${build})
  run(${build}/consumer)
  run(${build}/consumer_dist)

  # pkg-config: compile and link the same program by hand.
  find_program(PKG_CONFIG pkg-config)
  if(PKG_CONFIG)
    set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
    execute_process(COMMAND ${PKG_CONFIG} --cflags tapegrad OUTPUT_VARIABLE cflags OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE rc1)
    execute_process(COMMAND ${PKG_CONFIG} --libs --static tapegrad OUTPUT_VARIABLE libs OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE rc2)
    if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
      message(FATAL_ERROR "pkg-config does not find tapegrad.pc in ${prefix}/lib/pkgconfig")
    endif()
    separate_arguments(cflags UNIX_COMMAND "${cflags}")
    separate_arguments(libs UNIX_COMMAND "${libs}")
    separate_arguments(sflags UNIX_COMMAND "${flags}")
    run(${CXX_COMPILER} ${cflags} ${sflags} ${SOURCE_DIR}/tests/consumer/main.cpp -o ${WORK_DIR}/consumer-pkgconfig
        ${libs} -Wl,-rpath,${prefix}/lib)
    run(${WORK_DIR}/consumer-pkgconfig)
  endif()
elseif(MODE STREQUAL "subdirectory")
  set(build ${WORK_DIR}/consumer-subdirectory)
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${build} ${common} -DTAPEGRAD_SOURCE_DIR=${SOURCE_DIR}
      -DTAPEGRAD_SANITIZE=${SANITIZE})
  run(${CMAKE_COMMAND} --build ${build} -j2)
  run(${build}/consumer)
  run(${build}/consumer_dist)
else()
  message(FATAL_ERROR "MODE must be package or subdirectory")
endif()
