// Checkpoints: parameters (fp32 master and model copy), the gradients'
// format, and the whole state of a chain (scaler scale and counters,
// optimizer moments, schedule step count, stochastic-rounding stream, group
// multipliers), field by field and with every hyperparameter, plus a block
// of user metadata, in one file, so that a resumed run continues bit for bit.
//
//   save_checkpoint(path, step, params, state, {{"epoch", "3"}});
//   checkpoint_metadata m = load_checkpoint(path, step, params, state);
//
// Format (version 3, little-endian; strings are u32 length + bytes):
//   "MIXPRECK", u32 version, u32 reserved, u64 total size
//   arena:    u8 model format, u8 gradient format, u8 has master, u8 model
//             is master, u64 padded size, u32 count, per parameter: name,
//             rank, extents, group
//   range:    u64 first element, u64 end element (the elements the data
//             section holds: all of them, or one rank's shard), u64 save id
//             (the same in every file of one sharded save, mixprec/dist)
//   chain:    u32 count, per component: its path ("adamw/scale_by_adam"),
//             u32 + hyperparameters, u32 + scalars (each: name, u8 kind,
//             value), u32 + state fields (name, u8 format, u8 extent, u8
//             parameter set, u8 used, u8 saved, u64 entries)
//   step:     u64 completed steps, u64 skipped steps
//   groups:   u32 count, per group: name, f32 lr scale, f32 weight-decay scale
//   metadata: u32 count, per entry: key, value (bytes)
//   data:     master weights and model copy of the range, every used and
//             saved state field (per-element fields: the range's elements)
//   u32 CRC-32 of everything before it
//
// Version 2 is version 3 without the range section (every element).
//
// Loading checks every name, shape, format and field, and the
// hyperparameters: a checkpoint written with other values is refused with
// the field named, unless checkpoint_options::take_new_hyperparameters
// (then the chain's own values apply from the next step, checked as init()
// checks them, and the state is brought within them: a loss scale above a
// lowered max_scale is clamped to it). Files of version 1 (mixprec 0.1)
// still load (io/checkpoint_v1.hpp).
//
// save_checkpoint streams the file into a temporary of its own next to the
// target and renames it over the target only when complete and synced
// (io/file.hpp): a crash or an error leaves the previous checkpoint intact,
// and concurrent saves to one path each land whole. load_checkpoint checks
// the header first (a file that is not a checkpoint is rejected after 24
// bytes), then the checksum of the whole file, then every name, shape,
// format and field, and the values the file carries (group multipliers,
// each component's scalars: component protocol, restored_scalars), and
// only then copies the data in: any mismatch raises a mixprec::error
// saying what did not match, and changes nothing. Both move
// device memory through a fixed 4 MiB host buffer.
//
// The parts: io/checkpoint_encoding.hpp (values, sections, the writer),
// io/checkpoint_checking.hpp (every check, nothing changed) and
// io/checkpoint_loading.hpp (the copy into arena and state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/io/checkpoint_checking.hpp>
#include <mixprec/io/checkpoint_encoding.hpp>
#include <mixprec/io/checkpoint_loading.hpp>

namespace mixprec {

// The checkpoint as bytes (what save_checkpoint writes to its file).
template <class Arena, class... C>
MIXPREC_COLD std::vector<std::uint8_t> serialize_checkpoint(const chain_t<C...>& chain, Arena& params,
                                                            chain_state<Arena, C...>& state,
                                                            const checkpoint_metadata& user = {}, stream s = {}) {
  detail::memory_sink sink;
  detail::encode_checkpoint(sink, chain, params, state, user, s);
  return std::move(sink.bytes());
}

// Loads a checkpoint from bytes; checks everything first, changes nothing on error.
template <class Arena, class... C>
MIXPREC_COLD checkpoint_metadata deserialize_checkpoint(const std::uint8_t* data, std::size_t size,
                                                        const chain_t<C...>& chain, Arena& params,
                                                        chain_state<Arena, C...>& state,
                                                        const checkpoint_options& options = {}, stream s = {}) {
  return detail::decode_checkpoint(detail::memory_source(data, size), chain, params, state, options, s);
}

// Writes params and state to `path` atomically (see the header comment).
template <class Arena, class... C>
MIXPREC_COLD void save_checkpoint(const std::string& path, const chain_t<C...>& chain, Arena& params,
                                  chain_state<Arena, C...>& state, const checkpoint_metadata& user = {},
                                  stream s = {}) {
  detail::atomic_file_writer file(path, "save_checkpoint");
  detail::file_sink sink(file);
  detail::encode_checkpoint(sink, chain, params, state, user, s);
  file.commit();
}

// Loads params and state from `path`; nothing changes if it throws.
// Returns the metadata saved with it.
template <class Arena, class... C>
MIXPREC_COLD checkpoint_metadata load_checkpoint(const std::string& path, const chain_t<C...>& chain, Arena& params,
                                                 chain_state<Arena, C...>& state,
                                                 const checkpoint_options& options = {}, stream s = {}) {
  const detail::file_reader file(path, "load_checkpoint");
  return detail::decode_checkpoint(detail::file_source(file), chain, params, state, options, s);
}

// Loads params and state from several files that together hold what this
// arena and state keep: the shards of a sharded save, or whole checkpoints
// (mixprec/dist writes and reads its sets through this). Each file's
// per-element data goes where the arena and state hold those elements;
// everything else comes from the first file. The files must be of one save
// (the same save id and step). Every file is checked before anything is
// copied: nothing changes if it throws.
template <class Arena, class... C>
MIXPREC_COLD checkpoint_metadata load_checkpoint(const std::vector<std::string>& paths, const chain_t<C...>& chain,
                                                 Arena& params, chain_state<Arena, C...>& state,
                                                 const checkpoint_options& options = {}, stream s = {}) {
  detail::load_ranges want;
  want.master = {params.master_begin(), params.master_end()};
  want.model = {0, params.padded_size()};
  want.fields = state.shard();
  detail::checkpoint_files<Arena, C...> files;
  files.open(paths, chain, params, state, options, s);
  files.require_complete(want);
  files.commit(params, state, want, s);
  return files.files().front().user;
}

}  // namespace mixprec
