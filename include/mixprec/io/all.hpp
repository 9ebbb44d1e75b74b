// Umbrella header of the io layer: includes every header of its folder.
#pragma once

#include <mixprec/io/checkpoint.hpp>
