// tapegrad::nn — parameters, layers, initialisers, optimisers, data, checkpoints, training
// helpers. Everything is built on the public op API of <tapegrad/tapegrad.hpp>.
#pragma once

#include <tapegrad/tapegrad.hpp>
#include <tapegrad/ops/losses.hpp>
#include <tapegrad/ops/reductions.hpp>

#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/clip.hpp>
#include <tapegrad/nn/conv.hpp>
#include <tapegrad/nn/data.hpp>
#include <tapegrad/nn/history.hpp>
#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/nn/optim.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>
#include <tapegrad/nn/train.hpp>
#include <tapegrad/nn/transformer.hpp>
