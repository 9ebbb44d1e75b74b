// Umbrella header of the train layer: includes every header of its folder.
#pragma once

#include <mixprec/train/chain.hpp>
#include <mixprec/train/chain_state.hpp>
#include <mixprec/train/coded_blocks.hpp>
#include <mixprec/train/context.hpp>
#include <mixprec/train/environment.hpp>
#include <mixprec/train/geometry.hpp>
#include <mixprec/train/host_row_draws.hpp>
#include <mixprec/train/host_strategy.hpp>
#include <mixprec/train/layout.hpp>
#include <mixprec/train/measure_groups.hpp>
#include <mixprec/train/pass_runner.hpp>
#include <mixprec/train/passes.hpp>
#include <mixprec/train/plan.hpp>
#include <mixprec/train/reduction.hpp>
#include <mixprec/train/scopes.hpp>
#include <mixprec/train/state_allocation.hpp>
#include <mixprec/train/state_statistics.hpp>
#include <mixprec/train/step_runner.hpp>
#include <mixprec/train/update_groups.hpp>
