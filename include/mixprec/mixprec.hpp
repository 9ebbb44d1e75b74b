// mixprec: mixed-precision training components on Thrust/CUB.
// Including this header brings in every layer.
#pragma once

#include <mixprec/cast/all.hpp>
#include <mixprec/clipping/all.hpp>
#include <mixprec/component/all.hpp>
#include <mixprec/core/all.hpp>
#include <mixprec/format/all.hpp>
#include <mixprec/io/all.hpp>
#include <mixprec/monitor/all.hpp>
#include <mixprec/optim/all.hpp>
#include <mixprec/scaling/all.hpp>
#include <mixprec/tensor/all.hpp>
#include <mixprec/train/all.hpp>
#include <mixprec/writers/all.hpp>
