// tapegrad: everything a user needs — tensors, the tape, gradient checking and the op library.
#pragma once

#include <tapegrad/core/dot.hpp>
#include <tapegrad/core/error.hpp>
#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/hessian.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/parallel.hpp>
#include <tapegrad/core/philox.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>

#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/linalg.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/ops/reduce_axes.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/structure.hpp>
#include <tapegrad/ops/views.hpp>
#include <tapegrad/ops/losses.hpp>
#include <tapegrad/ops/detach.hpp>
#include <tapegrad/ops/conv.hpp>
#include <tapegrad/ops/pool.hpp>
#include <tapegrad/ops/norm.hpp>
#include <tapegrad/ops/transformer.hpp>
#include <tapegrad/ops/index.hpp>
#include <tapegrad/core/functional.hpp>
#include <tapegrad/core/checkpoint_op.hpp>
