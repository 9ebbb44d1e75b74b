// Test support: files on disk (checkpoint and weight-file tests).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mixprec/io/records.hpp>

namespace test {

inline std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::vector<std::uint8_t> out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  std::uint8_t buf[1 << 16];
  std::size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + got);
  std::fclose(f);
  return out;
}

inline void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

// The "<path>.tmp.*" files next to path (full paths, sorted).
inline std::vector<std::string> temporaries_of(const std::string& path) {
  const std::string dir = mixprec::detail::directory_of(path);
  const std::string prefix = mixprec::detail::base_name_of(path) + ".tmp.";
  std::vector<std::string> found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.compare(0, prefix.size(), prefix) == 0) found.push_back(dir + "/" + name);
    }
    ::closedir(d);
  }
  std::sort(found.begin(), found.end());
  return found;
}

// The pid of a child process that has exited and been reaped: no process
// has it (until the system reuses it, far later).
inline pid_t pid_of_exited_child() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

// A byte source in memory that counts what is read from it.
class counting_source final : public mixprec::detail::byte_source {
 public:
  explicit counting_source(const std::vector<std::uint8_t>& bytes) : bytes_(bytes) {}
  std::uint64_t size() const override { return bytes_.size(); }
  void read_at(std::uint64_t offset, void* out, std::size_t n) const override {
    bytes_read += n;
    std::copy(bytes_.begin() + static_cast<long>(offset), bytes_.begin() + static_cast<long>(offset + n),
              static_cast<std::uint8_t*>(out));
  }
  mutable std::uint64_t bytes_read = 0;

 private:
  const std::vector<std::uint8_t>& bytes_;
};

}  // namespace test
