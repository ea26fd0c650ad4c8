// Data-parallel training over MPI (or a world of one): docs/distributed.md.
#pragma once

#include <tapegrad/dist/checkpoint.hpp>
#include <tapegrad/dist/ddp.hpp>
#include <tapegrad/dist/env.hpp>
#include <tapegrad/dist/sampler.hpp>
