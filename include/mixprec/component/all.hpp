// Umbrella header of the component protocol: includes every header of its folder.
#pragma once

#include <mixprec/component/component.hpp>
#include <mixprec/component/pod_tuple.hpp>
#include <mixprec/component/protocol.hpp>
#include <mixprec/component/protocol_check.hpp>
