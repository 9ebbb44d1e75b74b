// Checkpoint loading: checked files copied into an arena and a state, each
// file's elements where this process keeps them (any split of a sharded
// save into any other), after every check has passed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <mixprec/io/checkpoint_checking.hpp>

namespace mixprec {
namespace detail {

// Copies the elements both the file's segments (at `at` in src) and the
// target's segments (in device memory at dst) hold. Both lists are sorted.
inline void copy_overlap(const byte_source& src, std::uint64_t at, const std::vector<element_segment>& file,
                         std::uint8_t* dst, const std::vector<element_segment>& target, std::size_t width, stream s) {
  std::size_t a = 0, b = 0;
  while (a < file.size() && b < target.size()) {
    const element_segment& f = file[a];
    const element_segment& t = target[b];
    const std::uint64_t lo = std::max(f.first, t.first);
    const std::uint64_t hi = std::min(f.first + f.count, t.first + t.count);
    if (lo < hi)
      source_to_device(src, at + (f.index + (lo - f.first)) * width, dst + (t.index + (lo - t.first)) * width,
                       (hi - lo) * width, s);
    if (f.first + f.count <= t.first + t.count) ++a;
    else ++b;
  }
}

// Copies checked files (a complete set, require_complete_set) into params
// and state: the elements of `want` from whichever file holds them,
// everything else from the first file.
template <class Arena, class... C>
MIXPREC_COLD void commit_checkpoint(const std::vector<checked_checkpoint<chain_block<C...>>>& files, Arena& params,
                                    chain_state<Arena, C...>& state, const load_ranges& want, stream s) {
  const auto& head = files.front();
  write_to_device(&head.block, raw(state.storage().block), 1, s);
  write_to_device(head.groups.data(), raw(state.storage().groups), head.groups.size(), s);
  const std::vector<segment_geometry> geo = segment_geometry_of(params);
  const std::vector<field_ref> refs = field_refs(state);
  for (const auto& c : files) {
    const std::uint64_t elements = c.end - c.first;
    const std::vector<element_segment> file_range{{c.first, elements, 0}};
    std::uint64_t at = c.data_at;
    if constexpr (Arena::has_master) {
      const element_range m = want.master;
      copy_overlap(*c.src, at, file_range, reinterpret_cast<std::uint8_t*>(params.master_data()),
                   {{m.begin, m.end - m.begin, m.begin - params.master_begin()}}, sizeof(float), s);
      at += elements * sizeof(float);
    }
    if constexpr (!Arena::model_is_master) {
      using model_type = typename Arena::model_type;
      const element_range m = want.model;
      copy_overlap(*c.src, at, file_range, reinterpret_cast<std::uint8_t*>(params.model_data()),
                   {{m.begin, m.end - m.begin, m.begin}}, sizeof(model_type), s);
      at += elements * sizeof(model_type);
    }
    for (std::size_t f = 0; f < refs.size(); ++f) {
      const state_field& d = refs[f].decl;
      if (!refs[f].buffer->used || !d.saved) continue;
      const std::size_t width = field_width(d);
      std::uint8_t* dst = raw(refs[f].buffer->bytes);
      if (is_coded(d.format)) {  // the file's codes where this state keeps them, then its blocks' scales
        copy_overlap(*c.src, at, element_segments(geo, d.on, c.first, c.end), dst,
                     element_segments(geo, d.on, want.fields.begin, want.fields.end), 1, s);
        at += saved_entry_bytes(d, c.entries[f]);
        const block_range theirs = blocks_of(geo, d, c.first, c.end);
        const block_range mine = blocks_of(geo, d, want.fields.begin, want.fields.end);
        copy_overlap(*c.src, at, {{theirs.begin, theirs.end - theirs.begin, 0}}, dst + refs[f].buffer->scale_offset,
                     {{mine.begin, mine.end - mine.begin, mine.begin}}, sizeof(float), s);
        at += (theirs.end - theirs.begin) * sizeof(float);
        continue;
      }
      if (d.where == extent::element)
        copy_overlap(*c.src, at, element_segments(geo, d.on, c.first, c.end), dst,
                     element_segments(geo, d.on, want.fields.begin, want.fields.end), width, s);
      else if (&c == &head) source_to_device(*c.src, at, dst, c.entries[f] * width, s);
      at += c.entries[f] * width;
    }
  }
}

// Reads and checks a checkpoint from `src`; changes params and state only
// when every check has passed. Returns the user metadata.
template <class Arena, class... C>
checkpoint_metadata decode_checkpoint(const byte_source& src, const chain_t<C...>& chain, Arena& params,
                                      chain_state<Arena, C...>& state, const checkpoint_options& options, stream s) {
  require_state_of(params, state, "load_checkpoint");
  const std::uint32_t version = check_header_and_crc(src);
  if (version == 1) return decode_checkpoint_v1(src, chain, params, state, s);
  std::vector<checked_checkpoint<chain_block<C...>>> files{check_checkpoint(src, chain, params, state, options, s)};
  const auto& c = files.front();
  require(c.first == 0 && c.end == params.padded_size(), "load_checkpoint: this file holds elements [", c.first, ", ",
          c.end, ") of ", params.padded_size(),
          " only, one shard of a sharded checkpoint: load the whole set with "
          "mixprec::dist::load_checkpoint");
  load_ranges want;
  want.master = {params.master_begin(), params.master_end()};
  want.model = {0, params.padded_size()};
  want.fields = state.shard();
  require_complete_set<Arena>(files, want);
  commit_checkpoint(files, params, state, want, s);
  return c.user;
}

// A set of checkpoint files that together hold the elements a load asks
// for (the shards of a sharded save, or one whole checkpoint): open() reads
// and checks every file, require_complete() that they are one save and
// hold every element wanted, commit() copies them in. Nothing changes
// before commit(), and commit() checks nothing, so a distributed load
// decides on every check, agrees across ranks, and only then commits.
template <class Arena, class... C>
class checkpoint_files {
 public:
  void open(const std::vector<std::string>& paths, const chain_t<C...>& chain, Arena& params,
            chain_state<Arena, C...>& state, const checkpoint_options& options, stream s) {
    require_state_of(params, state, "load_checkpoint");
    require(!paths.empty(), "load_checkpoint: no checkpoint files");
    for (const std::string& path : paths) {
      readers_.push_back(std::make_unique<file_reader>(path, "load_checkpoint"));
      sources_.push_back(std::make_unique<file_source>(*readers_.back()));
      try {
        checked_.push_back(check_checkpoint(*sources_.back(), chain, params, state, options, s));
      } catch (const error& e) {
        throw error(concat(path, ": ", e.what()));
      }
      require(checked_.back().version >= 2, path, ": a version-1 checkpoint cannot be part of a set");
    }
  }
  const std::vector<checked_checkpoint<chain_block<C...>>>& files() const { return checked_; }
  void require_complete(const load_ranges& want) const { require_complete_set<Arena>(checked_, want); }
  // After open() and require_complete() with the same `want`.
  void commit(Arena& params, chain_state<Arena, C...>& state, const load_ranges& want, stream s) {
    commit_checkpoint(checked_, params, state, want, s);
  }

 private:
  std::vector<std::unique_ptr<file_reader>> readers_;
  std::vector<std::unique_ptr<file_source>> sources_;
  std::vector<checked_checkpoint<chain_block<C...>>> checked_;
};

}  // namespace detail
}  // namespace mixprec
