// Reading checkpoints of format version 1 (mixprec 0.1), so that runs saved
// before the engine named its state still resume. Version 1 kept the chain's
// scalars as the raw bytes of one device block (the step counters, then each
// component's scalars in chain order) and each component's state as
// anonymous arrays of the arena's size; it had no hyperparameters (this
// chain's apply) and no metadata. Every component mixprec 0.1 had converts:
// the scalar layouts are the same but for dynamic_loss_scale, which kept a
// third float (the inverse scale of the step being applied) between its
// inverse scale and its growth tracker; the arrays are the component's
// used per-element fields, in order. Included by io/checkpoint.hpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <mixprec/io/checkpoint_encoding.hpp>
#include <mixprec/io/records.hpp>
#include <mixprec/train/chain.hpp>

namespace mixprec::detail {

template <class Arena, class... C>
checkpoint_metadata decode_checkpoint_v1(const byte_source& src, const chain_t<C...>& chain, Arena& params,
                                         chain_state<Arena, C...>& state, stream s) {
  require(!params.master_sharded() && state.shard().begin == 0 && state.shard().end == params.padded_size(),
          "version-1 checkpoints load into a whole arena and state (not a rank's shard)");
  record_reader body(src, "checkpoint", src.size() - 4);
  body.skip(checkpoint_header, "header");
  check_arena(body, params);

  constexpr std::size_t n = sizeof...(C);
  constexpr const char* names[] = {C::name..., ""};
  const auto ncomp = body.get<std::uint32_t>("component count");
  std::vector<std::string> saved_names;
  std::vector<std::uint64_t> scalar_bytes;
  std::vector<std::uint8_t> formats;
  std::vector<std::uint32_t> arrays_of;
  require(ncomp <= 4096, "checkpoint has ", ncomp, " components (corrupted)");
  for (std::uint32_t k = 0; k < ncomp; ++k) {
    saved_names.push_back(body.get_string("component name"));
    scalar_bytes.push_back(body.get<std::uint64_t>("component scalars"));
    formats.push_back(body.get<std::uint8_t>("state format"));
    arrays_of.push_back(body.get<std::uint32_t>("state arrays"));
  }
  std::vector<std::string> mine;
  for (std::size_t k = 0; k < n; ++k) mine.push_back(chain.path(k));
  require(ncomp == n, "version-1 checkpoint chain is ", user_chain_text(saved_names), " but this chain is ",
          user_chain_text(mine));
  for (std::size_t k = 0; k < n; ++k)
    require(saved_names[k] == names[k], "version-1 checkpoint: component ", k + 1, " is ", saved_names[k],
            " in the checkpoint but ", mine[k], " here");
  const auto block_size = body.get<std::uint64_t>("scalar block size");
  require(block_size <= (std::uint64_t{1} << 20), "checkpoint scalar block of ", block_size, " bytes (corrupted)");
  std::vector<std::uint8_t> old(static_cast<std::size_t>(block_size));
  body.get_bytes(old.data(), old.size(), "scalar block");
  constexpr std::size_t step_bytes = 32;  // u64 count, u64 skipped, u32 skip, non_finite, hold, reserved
  std::uint64_t needed = step_bytes;
  for (std::uint64_t b : scalar_bytes) needed += b;
  require(needed <= block_size, "version-1 checkpoint scalar block has ", block_size, " bytes but its components need ",
          needed);

  chain_block<C...> block = read_back(raw(state.storage().block), s);
  std::memcpy(&block.step.count, old.data(), 8);
  std::memcpy(&block.step.skipped_total, old.data() + 8, 8);
  block.step.t = block.step.count;
  block.step.skip = 0;
  block.step.hold = 0;
  {
    std::size_t at = step_bytes, k = 0;
    auto convert_one = [&](auto& scalars) {
      using S = std::remove_reference_t<decltype(scalars)>;
      const std::uint8_t* p = old.data() + at;
      if (std::string(names[k]) == "dynamic_loss_scale") {
        // scale, inverse scale, [inverse scale of the step applied], growth tracker, hysteresis left
        require(scalar_bytes[k] == 20 && sizeof(S) == 16, "version-1 checkpoint: dynamic_loss_scale keeps ",
                scalar_bytes[k], " bytes of scalars (expected 20)");
        std::memcpy(reinterpret_cast<std::uint8_t*>(&scalars), p, 8);
        std::memcpy(reinterpret_cast<std::uint8_t*>(&scalars) + 8, p + 12, 8);
      } else {
        require(scalar_bytes[k] == sizeof(S), "version-1 checkpoint: ", names[k], " keeps ", scalar_bytes[k],
                " bytes of scalars but this version's keep ", sizeof(S),
                ": convert it by loading and saving it with mixprec 0.1's layout of this component");
        std::memcpy(&scalars, p, sizeof(S));
      }
      at += static_cast<std::size_t>(scalar_bytes[k]);
      ++k;
    };
    std::apply([&](auto&... sc) { (convert_one(sc), ...); }, as_std_tuple_refs(block.comps));
  }
  // Version 1 kept no hyperparameters: the scalars are checked against this chain's.
  {
    const arena_info info = arena_info_of(params);
    std::size_t k = 0;
    std::apply(
        [&](const auto&... comp) {
          ((restore_component_scalars(block, k, comp, comp, false, info, mine[k]), ++k), ...);
        },
        chain.as_tuple());
  }

  const auto ngroups = body.get<std::uint32_t>("group count");
  const auto& my_groups = state.storage().group_names;
  require(ngroups == my_groups.size(), "checkpoint has ", ngroups, " groups but this arena has ", my_groups.size());
  std::vector<group_hyper> groups(ngroups);
  for (std::uint32_t g = 0; g < ngroups; ++g) {
    const std::string name = body.get_string("group name");
    require(name == my_groups[g], "group ", g, " is \"", name, "\" in the checkpoint but \"", my_groups[g], "\" here");
    groups[g].lr_scale = body.get<float>("group lr scale");
    groups[g].weight_decay_scale = body.get<float>("group weight decay scale");
    require_group_multipliers(name, groups[g]);
  }

  // State: component k's arrays are its used per-element fields, in order.
  std::vector<device_array> arrays;
  const std::size_t padded = params.padded_size();
  if constexpr (Arena::has_master) arrays.push_back({params.master_data(), padded * sizeof(float)});
  if constexpr (!Arena::model_is_master)
    arrays.push_back({params.model_data(), padded * sizeof(typename Arena::model_type)});
  {
    auto& fields = state.storage().fields;
    std::size_t k = 0, f = 0;
    auto map_one = [&](auto tag) {
      using T = typename decltype(tag)::type;
      std::uint32_t used = 0;
      for (std::size_t j = 0; j != field_count<T>(); ++j, ++f) {
        if (!fields[f].used) continue;
        const state_field fd = field_of<T>(j);
        require(fd.where == extent::element && fd.on == parameter_set::all, "version-1 checkpoint: ", names[k],
                " has state field ", fd.name, " that version 1 did not have");
        require(formats[k] == static_cast<std::uint8_t>(fd.format), "version-1 checkpoint: ", names[k],
                " keeps its state in ", format_name(static_cast<format_id>(formats[k])), " but here in ",
                format_name(fd.format));
        arrays.push_back({raw(fields[f].bytes), fields[f].bytes.size()});
        ++used;
      }
      require(used == arrays_of[k], "version-1 checkpoint: ", names[k], " has ", arrays_of[k],
              " state arrays in the checkpoint but ", used, " here (different options, e.g. amsgrad or momentum)");
      ++k;
    };
    (map_one(std::common_type<C>{}), ...);
  }
  std::uint64_t data_bytes = 0;
  for (const device_array& a : arrays) data_bytes += a.bytes;
  const std::uint64_t data_at = body.position();
  require(body.remaining() >= data_bytes, "checkpoint is truncated: its data section needs ", data_bytes,
          " bytes but only ", body.remaining(), " remain");
  require(body.remaining() == data_bytes, "checkpoint has ", body.remaining() - data_bytes,
          " unexpected bytes in its data section");

  write_to_device(&block, raw(state.storage().block), 1, s);
  write_to_device(groups.data(), raw(state.storage().groups), groups.size(), s);
  std::uint64_t at = data_at;
  for (const device_array& a : arrays) {
    source_to_device(src, at, a.data, a.bytes, s);
    at += a.bytes;
  }
  return {};
}

}  // namespace mixprec::detail
