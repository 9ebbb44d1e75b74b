// Durable files for checkpoints and weight files (POSIX).
//
//   atomic_file_writer  writes to a temporary file of its own next to the
//                       target ("<path>.tmp.<pid>.<n>", created exclusively),
//                       and commit() syncs it, renames it over the target and
//                       syncs the directory: a crash or an error at any point
//                       leaves the previous file as it was, concurrent writers
//                       to one path never share a temporary (the last rename
//                       wins, and the file is always one complete write), and
//                       a commit that returned survives a power loss. A
//                       writer that is destroyed uncommitted removes its
//                       temporary; temporaries left by processes that no
//                       longer exist (killed mid-save) are removed by the next
//                       writer to the same path.
//   file_reader         reads with positioned reads, so callers can make
//                       several passes (check first, then load).
//
// Every failure is a mixprec::error naming the file and the operating
// system's reason (strerror(errno)).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <mixprec/core/error.hpp>

namespace mixprec::detail {

inline std::string os_reason(int err) { return std::strerror(err); }

inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
inline std::string base_name_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Removes "<base>.tmp.<pid>.<n>" files in `dir` whose process is gone.
inline void remove_stale_temporaries(const std::string& path) {
  const std::string dir = directory_of(path);
  const std::string prefix = base_name_of(path) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;  // the writer's own open() reports a missing directory
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    char* end = nullptr;
    const long pid = std::strtol(rest.c_str(), &end, 10);
    if (end == rest.c_str() || *end != '.' || pid <= 0) continue;
    if (pid == static_cast<long>(::getpid())) continue;  // ours: removed by their writers
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

class atomic_file_writer {
 public:
  explicit atomic_file_writer(const std::string& path, const char* who) : path_(path), who_(who) {
    remove_stale_temporaries(path_);
    static unsigned counter = 0;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      tmp_ = concat(path_, ".tmp.", ::getpid(), ".", __atomic_fetch_add(&counter, 1u, __ATOMIC_RELAXED));
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0) throw error(concat(who_, ": cannot create ", tmp_, ": ", os_reason(errno)));
  }
  atomic_file_writer(const atomic_file_writer&) = delete;
  atomic_file_writer& operator=(const atomic_file_writer&) = delete;
  ~atomic_file_writer() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw error(concat(who_, ": cannot write ", tmp_, ": ", os_reason(w < 0 ? errno : EIO)));
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  // Sync, rename over the target, sync the directory.
  void commit() {
    if (::fsync(fd_) != 0) throw error(concat(who_, ": cannot sync ", tmp_, ": ", os_reason(errno)));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw error(concat(who_, ": cannot close ", tmp_, ": ", os_reason(errno)));
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw error(concat(who_, ": cannot rename ", tmp_, " to ", path_, ": ", os_reason(errno)));
    committed_ = true;
    const std::string dir = directory_of(path_);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw error(concat(who_, ": cannot open directory ", dir, " to sync it: ", os_reason(errno)));
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0) throw error(concat(who_, ": cannot sync directory ", dir, ": ", os_reason(err)));
  }

  const std::string& temporary_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  const char* who_;
  int fd_ = -1;
  bool committed_ = false;
};

class file_reader {
 public:
  file_reader(const std::string& path, const char* who) : path_(path), who_(who) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw error(concat(who_, ": cannot open ", path_, ": ", os_reason(errno)));
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      throw error(concat(who_, ": cannot stat ", path_, ": ", os_reason(err)));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw error(concat(who_, ": ", path_, " is not a regular file"));
    }
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  file_reader(const file_reader&) = delete;
  file_reader& operator=(const file_reader&) = delete;
  ~file_reader() { ::close(fd_); }

  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Exactly n bytes at `offset` (the caller checks the range against size()).
  void read_at(std::uint64_t offset, void* out, std::size_t n) const {
    auto* p = static_cast<std::uint8_t*>(out);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw error(concat(who_, ": cannot read ", path_, ": ", os_reason(errno)));
      if (r == 0) throw error(concat(who_, ": ", path_, " ended early (was it changed while being read?)"));
      p += r;
      n -= static_cast<std::size_t>(r);
      offset += static_cast<std::uint64_t>(r);
    }
  }

 private:
  std::string path_;
  const char* who_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace mixprec::detail
