// Umbrella header of the monitor layer: includes every header of its folder.
#pragma once

#include <mixprec/monitor/record_statistics.hpp>
