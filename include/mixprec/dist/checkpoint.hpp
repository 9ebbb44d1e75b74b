// Sharded checkpoints of a data-parallel run: every rank writes what only
// it holds, and a later run on any number of ranks loads them.
//
//   mixprec::dist::save_checkpoint("ckpt", dp, step, params, state, {{"epoch", "3"}});
//   mixprec::dist::load_checkpoint("ckpt", dp, step, params, state);
//
// A save writes `dir/step-<n>-<id>/part-<r>.ckpt` (ZeRO stages 1 and 2:
// one per rank, each holding the master weights, model copy and per-element
// optimizer state of its shard plus everything every rank keeps; stage 0:
// rank 0 writes the whole state once) and then, when every rank has written
// and synced its part, rank 0 replaces `dir/manifest` atomically and removes
// the previous save's directory. A crash or error at any point leaves the
// previous manifest, and the files it names, in place: the last complete
// save always loads.
//
// A load reads the manifest, checks every file it needs on every rank
// (header, checksum, arena, chain, hyperparameters, save id, step, the
// elements it holds against those the manifest names for it, that the
// files hold every element the rank loads) and agrees across ranks before
// any rank changes anything: a missing file, a file from another save or
// step, part files swapped or renamed, another arena or chain raise the
// same mixprec::error on every rank (naming the ranks that failed and the
// first one's reason) and load nothing. Files are cut by elements,
// not by ranks, so a save on N ranks loads on M (and into one process with
// mixprec::load_checkpoint(paths, ...), io/checkpoint.hpp).
//
// Manifest (text, one item per line):
//   mixprec sharded checkpoint 1
//   save <16 hex digits>
//   step <completed steps>
//   directory <name>
//   parts <count>
//   <first element> <end element> <file name>      (once per part, in order)
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <mixprec/core/error.hpp>
#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/io/checkpoint.hpp>
#include <mixprec/io/file.hpp>

namespace mixprec::dist {

namespace detail {

struct manifest_part {
  std::uint64_t first = 0, end = 0;
  std::string file;
};
struct manifest {
  std::uint64_t save = 0, step = 0;
  std::string directory;
  std::vector<manifest_part> parts;
};

inline std::string hex64(std::uint64_t x) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(x));
  return b;
}

inline std::string manifest_text(const manifest& m) {
  std::ostringstream o;
  o << "mixprec sharded checkpoint 1\nsave " << hex64(m.save) << "\nstep " << m.step << "\ndirectory " << m.directory
    << "\nparts " << m.parts.size() << "\n";
  for (const manifest_part& p : m.parts) o << p.first << " " << p.end << " " << p.file << "\n";
  return o.str();
}

inline manifest read_manifest(const std::string& dir) {
  const std::string path = dir + "/manifest";
  std::ifstream in(path);
  require(in.good(), "load_checkpoint: no sharded checkpoint in ", dir, " (cannot open ", path, ")");
  auto bad = [&](const char* what) {
    return concat("load_checkpoint: ", path, " is not a valid manifest (", what, ")");
  };
  std::string line, word;
  std::getline(in, line);
  require(line == "mixprec sharded checkpoint 1", bad("first line"));
  manifest m;
  std::string save_hex;
  std::size_t parts = 0;
  require(static_cast<bool>(in >> word >> save_hex) && word == "save" && save_hex.size() == 16, bad("save id"));
  m.save = std::stoull(save_hex, nullptr, 16);
  require(static_cast<bool>(in >> word >> m.step) && word == "step", bad("step"));
  require(static_cast<bool>(in >> word >> m.directory) && word == "directory" &&
              m.directory.find('/') == std::string::npos && !m.directory.empty() && m.directory[0] != '.',
          bad("directory"));
  require(static_cast<bool>(in >> word >> parts) && word == "parts" && parts > 0 && parts <= (1u << 20), bad("parts"));
  std::uint64_t reached = 0;
  for (std::size_t k = 0; k < parts; ++k) {
    manifest_part p;
    require(static_cast<bool>(in >> p.first >> p.end >> p.file), bad("a part"));
    require(p.first == reached && p.end >= p.first && p.file.find('/') == std::string::npos && !p.file.empty() &&
                p.file[0] != '.',
            bad("parts out of order"));
    reached = p.end;
    m.parts.push_back(p);
  }
  require(!(in >> word), bad("text after the last part"));
  return m;
}

// mkdir -p: the directory and any missing parents.
inline bool make_directory(const std::string& path, std::string& why) {
  for (std::size_t at = path.find('/', 1);; at = path.find('/', at + 1)) {
    const std::string part = path.substr(0, at);
    if (!part.empty() && ::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST) {
      why = concat("cannot create ", part, ": ", std::strerror(errno));
      return false;
    }
    if (at == std::string::npos) return true;
  }
}

// Removes dir/name and the files in it (best effort: a leftover directory
// is harmless, the manifest never names it).
inline void remove_save_directory(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (DIR* d = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string f = e->d_name;
      if (f != "." && f != "..") std::remove((path + "/" + f).c_str());
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
}
inline std::vector<std::string> save_directories(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string f = e->d_name;
      if (f.rfind("step-", 0) == 0) out.push_back(f);
    }
    ::closedir(d);
  }
  return out;
}

// Every rank's success; on any failure, the same mixprec::error on every
// rank: the ranks that failed and the first one's reason. `fact` (the
// save id of the manifest a load read, say) must be the same on every
// rank that succeeded, else every rank fails too.
template <class DP>
void agree_on(DP& dp, bool ok, const std::string& my_error, const char* what, std::uint64_t fact = 0) {
  struct vote {
    std::uint64_t fact;
    std::uint8_t ok;
  };
  vote mine{};
  mine.fact = fact;
  mine.ok = ok ? 1 : 0;
  const std::vector<vote> all = dp.all_gather_value(mine);
  std::string failed;
  int first = -1, agreeing = -1;
  bool same_facts = true;
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (!all[r].ok) {
      failed += (failed.empty() ? "" : ", ") + std::to_string(r);
      if (first < 0) first = static_cast<int>(r);
    } else if (agreeing < 0) {
      agreeing = static_cast<int>(r);
    } else {
      same_facts = same_facts && all[r].fact == all[static_cast<std::size_t>(agreeing)].fact;
    }
  }
  if (failed.empty() && same_facts) return;
  if (failed.empty())
    throw error(concat(what, ": the ranks read different files (a save in progress?): rank ", agreeing, " read save ",
                       hex64(all[static_cast<std::size_t>(agreeing)].fact), "; nothing was changed"));
  // The first failed rank's reason, sent to every rank (at most 1 KiB of it).
  struct reason_text {
    char text[1024];
  };
  reason_text r{};
  if (dp.rank() == first) {
    const std::string prefix = "mixprec: ";
    const std::string why = my_error.compare(0, prefix.size(), prefix) == 0 ? my_error.substr(prefix.size()) : my_error;
    std::memcpy(r.text, why.data(), std::min(why.size(), sizeof r.text - 1));
  }
  const std::vector<reason_text> reasons = dp.all_gather_value(r);
  const char* reason = reasons[static_cast<std::size_t>(first)].text;
  throw error(concat(what, ": failed on rank(s) ", failed, "; nothing was changed; rank ", first, ": ", reason));
}

}  // namespace detail

// Saves the run in `dir` (created if missing) from every rank; returns when
// the manifest names the new files.
template <class Comm, class Arena, class... C>
void save_checkpoint(const std::string& dir, data_parallel<Comm>& dp, const chain_t<C...>& chain, Arena& params,
                     chain_state<Arena, C...>& state, const checkpoint_metadata& user = {}, stream s = {}) {
  // One save id for every rank (rank 0's draw), and its directory.
  std::uint64_t id = 0;
  if (dp.rank() == 0) id = std::random_device{}() * 4294967296ull + std::random_device{}();
  id = dp.all_gather_value(id)[0];
  const std::uint64_t step = state.count();
  const std::string name = "step-" + std::to_string(step) + "-" + detail::hex64(id);
  const std::string sub = dir + "/" + name;
  const bool writes = dp.sharded() || dp.rank() == 0;
  const std::string file = "part-" + std::to_string(dp.rank()) + ".ckpt";
  std::string why;
  bool ok = detail::make_directory(dir, why) && detail::make_directory(sub, why);
  if (ok && writes) {
    try {
      mixprec::detail::atomic_file_writer out(sub + "/" + file, "save_checkpoint");
      mixprec::detail::file_sink sink(out);
      mixprec::detail::encode_checkpoint(sink, chain, params, state, user, s, id);
      out.commit();
    } catch (const error& e) {
      ok = false;
      why = e.what();
    }
  }
  try {
    detail::agree_on(dp, ok, why, "save_checkpoint");
  } catch (const error&) {
    if (dp.rank() == 0) detail::remove_save_directory(dir, name);
    throw;
  }
  // Rank 0 names the parts in the manifest, then drops older saves.
  ok = true;
  why.clear();
  if (dp.rank() == 0) {
    detail::manifest m;
    m.save = id;
    m.step = step;
    m.directory = name;
    const int parts = dp.sharded() ? dp.size() : 1;
    for (int r = 0; r < parts; ++r) {
      const element_range e = dp.shard_of(r);
      m.parts.push_back({e.begin, e.end, "part-" + std::to_string(r) + ".ckpt"});
    }
    try {
      mixprec::detail::atomic_file_writer out(dir + "/manifest", "save_checkpoint");
      const std::string text = detail::manifest_text(m);
      out.write(text.data(), text.size());
      out.commit();
      for (const std::string& old : detail::save_directories(dir))
        if (old != name) detail::remove_save_directory(dir, old);
    } catch (const error& e) {
      ok = false;
      why = e.what();
      detail::remove_save_directory(dir, name);
    }
  }
  detail::agree_on(dp, ok, why, "save_checkpoint (manifest)");
}

// Loads the save `dir`'s manifest names into this rank's arena and state,
// whatever the number of ranks that wrote it. Returns the user metadata.
template <class Comm, class Arena, class... C>
checkpoint_metadata load_checkpoint(const std::string& dir, data_parallel<Comm>& dp, const chain_t<C...>& chain,
                                    Arena& params, chain_state<Arena, C...>& state,
                                    const checkpoint_options& options = {}, stream s = {}) {
  mixprec::detail::checkpoint_files<Arena, C...> files;
  mixprec::detail::load_ranges want;
  const element_range mine = dp.shard();
  want.master = dp.sharded() ? mine : element_range{params.master_begin(), params.master_end()};
  if constexpr (!Arena::has_master) want.master = {0, 0};
  want.model = mine;
  want.fields = state.shard();
  // Every check on every rank first: the manifest, each file against it
  // (save, step, the elements it names), and that the files hold all this
  // rank loads. Then the ranks agree, and only then does anything change.
  std::string why;
  bool ok = true;
  std::uint64_t save = 0;
  try {
    const detail::manifest m = detail::read_manifest(dir);
    save = m.save;
    mixprec::detail::require(m.parts.back().end == params.padded_size(), "load_checkpoint: ", dir, "/manifest covers ",
                             m.parts.back().end, " elements but this arena has ", params.padded_size());
    std::vector<std::string> paths;
    std::vector<detail::manifest_part> named;
    for (const detail::manifest_part& p : m.parts)
      if (p.first < mine.end && p.end > mine.begin) {
        paths.push_back(dir + "/" + m.directory + "/" + p.file);
        named.push_back(p);
      }
    files.open(paths, chain, params, state, options, s);
    for (std::size_t k = 0; k < paths.size(); ++k) {
      const auto& f = files.files()[k];
      mixprec::detail::require(f.set_id == m.save, "load_checkpoint: ", paths[k], " is from another save (id ",
                               detail::hex64(f.set_id), ", the manifest names ", detail::hex64(m.save), ")");
      mixprec::detail::require(f.block.step.count == m.step, "load_checkpoint: ", paths[k], " is of step ",
                               f.block.step.count, ", the manifest names step ", m.step);
      mixprec::detail::require(f.first == named[k].first && f.end == named[k].end, "load_checkpoint: ", paths[k],
                               " holds elements [", f.first, ", ", f.end, ") but the manifest names it for elements [",
                               named[k].first, ", ", named[k].end, ") (part files renamed or swapped?)");
    }
    files.require_complete(want);
  } catch (const std::exception& e) {  // any failure (bad_alloc too) must reach the agreement
    ok = false;
    why = e.what();
  }
  detail::agree_on(dp, ok, why, "load_checkpoint", save);
  files.commit(params, state, want, s);
  dp.gather_model(params, s);
  synchronize(s);
  return files.files().front().user;
}

}  // namespace mixprec::dist
