// train_digits: a 64-128-10 multilayer perceptron trained on the UCI
// handwritten digits (8x8 images) under several precision configurations,
// each a different parameter arena and training chain:
//
//   fp32                        parameters<float>                     adamw
//   fp16+master+dynamic-scale   parameters<half, half>  (fp32 master) dynamic_loss_scale + adamw
//   bf16+master                 parameters<bfloat16, bfloat16>        adamw
//   bf16+master+bf16-moments    parameters<bfloat16, bfloat16>        adamw<bfloat16>
//   bf16+master+8bit-moments    parameters<bfloat16, bfloat16>        adamw<block_quantized<dynamic8>>
//   bf16+master+fp8-moments     parameters<bfloat16, bfloat16>        adamw<block_quantized<fp8_e4m3>>
//   pure-bf16+stochastic        parameters<bfloat16, bfloat16, void>  adamw<bfloat16> + round_model_stochastic
//   bf16+kahan                  parameters<bfloat16, bfloat16, void>  adamw + kahan_summation<bfloat16>
//   bf16+kahan+8bit-moments     parameters<bfloat16, bfloat16, void>  adamw<block_quantized<dynamic8>> +
//   kahan_summation fp8-e4m3+master             parameters<fp8_e4m3, bfloat16>        adamw (omit with --no-fp8)
//
// --controls adds two runs that show what the techniques above are for:
// fp16 without loss scaling, and pure bf16 weights with round-to-nearest
// updates (no master weights, no stochastic rounding, no compensation). The
// second falls behind (its training loss ends 1.5-2x fp32's): many AdamW
// updates are below half a bfloat16 ulp of their weight and are lost. The
// first trains as well as fp32 here: this small model's gradients mostly fit
// fp16 unscaled (record_statistics counts the fp16 subnormals of both fp16
// runs and the summary prints them: a few percent of the gradients, with a
// fraction of a percent flushed to zero; README.md), and Adam normalises
// away the lost relative precision.
//
// Output: a table (or, with --json, a JSON array) on stdout, and two CSV
// files in --out DIR: digits_curves.csv (per configuration and epoch: loss
// and accuracy on the training and test sets, loss scale, skipped steps) and
// digits_steps.csv (what record_statistics saw at every step of the fp16
// runs: loss scale, skipped, unscaled gradient norm, learning rate, and the
// fractions of the stored fp16 gradients that were exactly zero and that
// were fp16 subnormals).
// examples/train_digits/plot.py turns them into DIR/digits_curves.png.
//
// The example owns its forward and backward passes: plain element loops in
// functors launched with thrust::for_each_n over a counting iterator, so the
// same code runs on the GPU (nvcc) and on the CPU (Thrust's OpenMP system).
// The forward pass reads the model copy of the weights and rounds every
// activation to the model format; the backward pass computes gradients of
// loss * loss_scale in float, rounds the activation gradients and the
// parameter gradients to the gradient format, and reads the loss scale in
// device memory (no host round trip per step). As a GPU kernel converts a
// tile once into registers, each step widens the model copy to float once
// (mixprec::convert_n, exact) and keeps the rounded activations and their
// gradients as float values, so the inner loops convert nothing; they are
// rounded by a separate pass over their buffer (round_buffer). The results
// are the bits a per-multiply conversion gives.
//
// Data parallel: the same source built as train_digits_mpi (with
// MIXPREC_DIGITS_MPI, linking mixprec::mpi) runs under mpirun. Each rank
// takes its share of every batch; mixprec::dist::data_parallel averages the
// gradients (--zero 1 or 2 also shards the master weights and optimizer
// state), so R ranks train the model one process trains, up to the rounding
// of the gradient sums, and rank 0 prints the same table:
//
//   mpirun -np 2 train_digits_mpi [--zero 0|1|2] [options]
//
// Usage: train_digits [--epochs N] [--batch N] [--lr X] [--weight-decay X] [--seed N]
//                     [--data PATH] [--out DIR] [--no-csv] [--no-fp8] [--controls] [--json] [--help]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <mixprec/mixprec.hpp>

#if defined(MIXPREC_DIGITS_MPI)
#include <mpi.h>

#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/dist/mpi_communicator.hpp>
#endif

#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>

#include <zlib.h>

#ifndef MIXPREC_DIGITS_CSV
#define MIXPREC_DIGITS_CSV "examples/data/digits/digits.csv.gz"
#endif

namespace {

using mixprec::bfloat16;
using mixprec::fp8_e4m3;
using mixprec::half;
using mixprec::to_float;

constexpr std::size_t kInputs = 64, kHidden = 128, kClasses = 10;
constexpr std::size_t kTrainCount = 1437;   // the rest (360 of 1797) is the test set
constexpr std::uint64_t kSplitSeed = 1797;  // fixed: every run tests on the same images

// ---------------------------------------------------------------------------
// Options

struct options {
  int epochs = 20;
  std::size_t batch = 64;
  float lr = 2e-3f;
  float weight_decay = 1e-4f;
  std::uint64_t seed = 1;
  std::string data = MIXPREC_DIGITS_CSV;
  std::string out = ".";
  bool csv = true;
  bool fp8 = true;
  bool controls = false;
  bool json = false;
  int zero = 0;  // train_digits_mpi: the ZeRO stage
#if defined(MIXPREC_DIGITS_MPI)
  mixprec::dist::mpi_communicator* comm = nullptr;
#endif
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "Usage: train_digits [options]\n"
               "Trains a 64-128-10 MLP on the UCI digits under several precision configurations\n"
               "and prints one row per configuration.\n\n"
               "  --epochs N        training epochs (default 20)\n"
               "  --batch N         mini-batch size (default 64)\n"
               "  --lr X            AdamW learning rate (default 0.002)\n"
               "  --weight-decay X  AdamW weight decay of the weights; biases get none (default 0.0001)\n"
               "  --seed N          seed of the initial weights and of the shuffling (default 1)\n"
               "  --data PATH       the digits .csv.gz (default %s)\n"
               "  --out DIR         where digits_curves.csv and digits_steps.csv go (default .)\n"
               "  --no-csv          write no CSV files\n"
               "  --no-fp8          skip the last configuration (fp8 e4m3 model copy, bf16 gradients, fp32 master)\n"
               "  --controls        also run fp16 without loss scaling and pure bf16 with round-to-nearest updates\n"
               "  --json            print a JSON array of the results instead of the table\n"
#if defined(MIXPREC_DIGITS_MPI)
               "  --zero N          ZeRO stage of the data-parallel run: 0 (default), 1 or 2\n"
#endif
               "  --help            this text\n\n"
               "Plot the curves with: python3 examples/train_digits/plot.py --dir DIR\n",
               MIXPREC_DIGITS_CSV);
}

[[noreturn]] void bad_usage(const std::string& message) {
  std::fprintf(stderr, "train_digits: %s\n\n", message.c_str());
  usage(stderr);
  std::exit(2);
}

long long parse_int(const char* flag, const char* text, long long lo, long long hi) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi)
    bad_usage(std::string(flag) + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "], got \"" + text + "\"");
  return v;
}
float parse_float(const char* flag, const char* text, float lo, float hi) {
  char* end = nullptr;
  const float v = std::strtof(text, &end);
  if (end == text || *end != '\0' || !(v >= lo && v <= hi))
    bad_usage(std::string(flag) + " expects a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
              "], got \"" + text + "\"");
  return v;
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad_usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--epochs") {
      o.epochs = static_cast<int>(parse_int("--epochs", value(), 1, 100000));
    } else if (a == "--batch") {
      o.batch = static_cast<std::size_t>(parse_int("--batch", value(), 1, static_cast<long long>(kTrainCount)));
    } else if (a == "--lr") {
      o.lr = parse_float("--lr", value(), 1e-8f, 10.0f);
    } else if (a == "--weight-decay") {
      o.weight_decay = parse_float("--weight-decay", value(), 0.0f, 10.0f);
    } else if (a == "--seed") {
      o.seed = static_cast<std::uint64_t>(parse_int("--seed", value(), 0, 1ll << 62));
    } else if (a == "--data") {
      o.data = value();
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--no-csv") {
      o.csv = false;
    } else if (a == "--no-fp8") {
      o.fp8 = false;
    } else if (a == "--controls") {
      o.controls = true;
    } else if (a == "--json") {
      o.json = true;
#if defined(MIXPREC_DIGITS_MPI)
    } else if (a == "--zero") {
      o.zero = static_cast<int>(parse_int("--zero", value(), 0, 2));
#endif
    } else {
      bad_usage("unknown option \"" + a + "\"");
    }
  }
  return o;
}

// ---------------------------------------------------------------------------
// Data: the .csv.gz, a fixed train/test split, pixels scaled to [0, 1].

// splitmix64 (Steele, Lea, Flood 2014): a tiny seeded generator for shuffling.
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (the modulo bias is below 2^-50 for these n).
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

void shuffle(std::vector<int>& v, std::uint64_t seed) {
  splitmix64 rng{seed};
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

struct host_set {
  std::vector<float> images;  // count x kInputs, row-major
  std::vector<int> labels;
  std::size_t count() const { return labels.size(); }
};

host_set read_digits(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + path + " (pass --data PATH)");
  host_set all;
  char line[4096];
  std::size_t row = 0;
  while (gzgets(f, line, sizeof line) != nullptr) {
    ++row;
    const std::size_t len = std::strlen(line);
    if (len + 1 == sizeof line && line[len - 1] != '\n') {
      gzclose(f);
      throw std::runtime_error(path + ":" + std::to_string(row) + ": line too long");
    }
    if (len == 0 || line[0] == '\n' || line[0] == '\r') continue;
    const char* p = line;
    for (std::size_t k = 0; k <= kInputs; ++k) {
      char* end = nullptr;
      const long v = std::strtol(p, &end, 10);
      const bool label = k == kInputs;
      const bool sep_ok = label ? (*end == '\0' || *end == '\n' || *end == '\r') : *end == ',';
      if (end == p || !sep_ok || v < 0 || v > (label ? 9 : 16)) {
        gzclose(f);
        throw std::runtime_error(path + ":" + std::to_string(row) +
                                 ": expected 64 pixel values in 0..16 and a label "
                                 "in 0..9, separated by commas");
      }
      if (label) all.labels.push_back(static_cast<int>(v));
      else all.images.push_back(static_cast<float>(v) / 16.0f);
      p = end + 1;
    }
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const bool failed = err != Z_OK && err != Z_STREAM_END;
  const std::string what = failed ? msg : "";
  gzclose(f);
  if (failed) throw std::runtime_error("reading " + path + ": " + what);
  if (all.count() <= kTrainCount)
    throw std::runtime_error(path + ": " + std::to_string(all.count()) + " rows; need more than " +
                             std::to_string(kTrainCount));
  return all;
}

// The data on the device.
struct device_set {
  thrust::device_vector<float> images;
  thrust::device_vector<int> labels;
  std::size_t count = 0;
  const float* x() const { return thrust::raw_pointer_cast(images.data()); }
  const int* y() const { return thrust::raw_pointer_cast(labels.data()); }
};

struct dataset {
  device_set train, test;
};

dataset split(const host_set& all) {
  std::vector<int> order(all.count());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  shuffle(order, kSplitSeed);
  auto take = [&](std::size_t first, std::size_t last) {
    std::vector<float> images;
    std::vector<int> labels;
    for (std::size_t i = first; i < last; ++i) {
      const std::size_t r = static_cast<std::size_t>(order[i]);
      images.insert(images.end(), all.images.begin() + static_cast<std::ptrdiff_t>(r * kInputs),
                    all.images.begin() + static_cast<std::ptrdiff_t>((r + 1) * kInputs));
      labels.push_back(all.labels[r]);
    }
    device_set s;
    s.images = images;  // host -> device
    s.labels = labels;
    s.count = labels.size();
    return s;
  };
  dataset d;
  d.train = take(0, kTrainCount);
  d.test = take(kTrainCount, all.count());
  return d;
}

// ---------------------------------------------------------------------------
// Device kernels: element loops over a counting iterator. A training step
// is four launches (layer 1 forward, output layer + loss, layer 2 backward,
// layer 1 backward) plus the chain's passes.

template <class F>
void launch(std::size_t n, const F& f) {
  if (n == 0) return;
  thrust::for_each_n(thrust::device, thrust::counting_iterator<std::size_t>(0), n, f);
}

// Row b of a batch is row rows[b] of the data set (rows == nullptr: row b).
MIXPREC_HOST_DEVICE std::size_t row_of(const int* rows, std::size_t b) {
  return rows != nullptr ? static_cast<std::size_t>(rows[b]) : b;
}

// A float holding a value rounded to format F.
template <class F>
MIXPREC_HOST_DEVICE float rounded_to(float x) {
  return to_float(mixprec::convert<F>(x));
}

// v[i] = v[i] rounded to format F (kept as a float), for a whole buffer in
// one pass. The layers below leave their outputs unrounded and this pass
// rounds them after: the same bits, and on the host much faster than
// rounding each output inside the dot-product kernels (measured: the fp16
// configuration 0.50 -> 0.37 s, fp32 0.31 s; the dot products' machine code
// is the same either way, and why the rounding slowed them was not traced).
template <class F>
struct round_values {
  float* v;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const { v[i] = rounded_to<F>(v[i]); }
};
template <class F>
void round_buffer(float* v, std::size_t n) {
  if constexpr (!std::is_same_v<F, float>) launch(n, round_values<F>{v});
}

// y[b, o] = relu(bias[o] + sum_k x[row(b), k] * weight[o, k]), computed in
// float from the (widened) model copy of the weights (round_buffer then
// rounds y to the model format).
struct linear_relu_forward {
  const float* x;       // [rows, in]
  const int* rows;      // the batch's rows of x, or nullptr
  const float* weight;  // [out, in]
  const float* bias;    // [out]
  float* y;             // [batch, out]
  std::size_t in, out;
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    const std::size_t b = i / out, o = i % out;
    const float* xb = x + row_of(rows, b) * in;
    const float* wo = weight + o * in;
    float acc = bias[o];
    for (std::size_t k = 0; k < in; ++k) acc += xb[k] * wo[k];
    y[i] = acc > 0.0f ? acc : 0.0f;
  }
};

// The output layer and the softmax cross-entropy of sample b: the logits
// (rounded to the model format), loss[b], correct[b] (argmax == label) when
// `correct` is set, and when `dlogits` is set the gradient of
// loss_scale * (mean loss over the batch) with respect to the logits,
// rounded to the gradient format (`mean_over`: the batch's size, or a
// rank's share of it in the data-parallel build, whose ranks' mean
// gradients are then averaged). `scale` points at the loss scale in device
// memory (nullptr: 1), read there with no host round trip.
template <class Model, class Grad>
struct output_layer_loss {
  const float* h;       // [batch, hidden], rounded to Model
  const float* weight;  // [classes, hidden]
  const float* bias;    // [classes]
  const int* labels;
  const int* rows;
  float mean_over;
  const float* scale;
  float* loss;
  int* correct;
  float* dlogits;  // [batch, classes], rounded to Grad
  MIXPREC_HOST_DEVICE void operator()(std::size_t b) const {
    float z[kClasses];
    const float* hb = h + b * kHidden;
    for (std::size_t o = 0; o < kClasses; ++o) {
      float acc = bias[o];
      for (std::size_t j = 0; j < kHidden; ++j) acc += hb[j] * weight[o * kHidden + j];
      z[o] = rounded_to<Model>(acc);
    }
    std::size_t arg = 0;
    for (std::size_t o = 1; o < kClasses; ++o) arg = z[o] > z[arg] ? o : arg;
    float sum = 0.0f;
    for (std::size_t o = 0; o < kClasses; ++o) sum += expf(z[o] - z[arg]);
    const float lse = z[arg] + logf(sum);
    const std::size_t label = static_cast<std::size_t>(labels[row_of(rows, b)]);
    loss[b] = lse - z[label];
    if (correct != nullptr) correct[b] = arg == label ? 1 : 0;
    if (dlogits != nullptr) {
      const float s = scale != nullptr ? *scale : 1.0f;
      const float coef = s / mean_over;
      for (std::size_t o = 0; o < kClasses; ++o) {
        const float p = expf(z[o] - lse);
        dlogits[b * kClasses + o] = rounded_to<Grad>((p - (o == label ? 1.0f : 0.0f)) * coef);
      }
    }
  }
};

// Backward pass of a linear layer y = x weight^T + bias, over
// i in [0, out * in + out + (dx ? batch * in : 0)):
//   dweight[o, k] = sum_b dy[b, o] * x[row(b), k]      (i < out * in)
//   dbias[o] = sum_b dy[b, o]                           (the next out)
//   dx[b, k] = [x[b, k] > 0] * sum_o dy[b, o] * weight[o, k]   (the rest, when dx is set:
//                                                       x is then the output of a ReLU)
// all summed in float and rounded to the gradient format G (dx is kept as
// float values, rounded to G by round_buffer after). The parameter
// gradients are overwritten, so they need no zeroing.
template <class G>
struct linear_backward {
  const float* x;       // [rows, in]
  const int* rows;      // the batch's rows of x, or nullptr
  const float* dy;      // [batch, out]
  const float* weight;  // [out, in]
  G* dweight;           // [out, in]
  G* dbias;             // [out]
  float* dx;            // [batch, in] or nullptr
  std::size_t batch, in, out;
  std::size_t size() const { return out * in + out + (dx != nullptr ? batch * in : 0); }
  MIXPREC_HOST_DEVICE void operator()(std::size_t i) const {
    float acc = 0.0f;
    if (i < out * in) {
      const std::size_t o = i / in, k = i % in;
      for (std::size_t b = 0; b < batch; ++b) acc += dy[b * out + o] * x[row_of(rows, b) * in + k];
      dweight[i] = mixprec::convert<G>(acc);
    } else if (i < out * in + out) {
      const std::size_t o = i - out * in;
      for (std::size_t b = 0; b < batch; ++b) acc += dy[b * out + o];
      dbias[o] = mixprec::convert<G>(acc);
    } else {
      const std::size_t j = i - out * in - out, b = j / in, k = j % in;
      if (x[row_of(rows, b) * in + k] > 0.0f)
        for (std::size_t o = 0; o < out; ++o) acc += dy[b * out + o] * weight[o * in + k];
      dx[j] = acc;
    }
  }
};

// ---------------------------------------------------------------------------
// The model

template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

template <class Arena>
void add_mlp(Arena& params) {
  params.add("fc1.weight", {kHidden, kInputs});
  params.add("fc1.bias", {kHidden}, "no_decay");
  params.add("fc2.weight", {kClasses, kHidden});
  params.add("fc2.bias", {kClasses}, "no_decay");
}
template <class Arena>
void initialize_mlp(Arena& params, std::uint64_t seed) {
  params.initialize("fc1.weight", mixprec::init::kaiming_uniform{}, seed);
  params.initialize("fc1.bias", mixprec::init::zeros{}, seed);
  params.initialize("fc2.weight", mixprec::init::kaiming_uniform{}, seed);
  params.initialize("fc2.bias", mixprec::init::zeros{}, seed);
}

// The parameters' device pointers, and activations and activation
// gradients for up to `capacity` samples.
template <class Model, class Grad>
struct mlp {
  // Pointers into the arena (stable after finalize()): the model copy and the gradients.
  const Model *w1, *b1, *w2, *b2;
  Grad *gw1, *gb1, *gw2, *gb2;
  thrust::device_vector<int> rows;                  // the epoch's order of the training rows
  thrust::device_vector<float> w1f, b1f, w2f, b2f;  // the model copy, widened once per step
  thrust::device_vector<float> h;                   // hidden activations, rounded to the model format
  thrust::device_vector<float> dlogits, dh;         // rounded to the gradient format
  thrust::device_vector<float> loss;
  thrust::device_vector<int> correct;

  template <class Arena>
  mlp(Arena& params, std::size_t capacity, std::size_t train_count)
      : w1(params.model("fc1.weight").data()),
        b1(params.model("fc1.bias").data()),
        w2(params.model("fc2.weight").data()),
        b2(params.model("fc2.bias").data()),
        gw1(params.grad("fc1.weight").data()),
        gb1(params.grad("fc1.bias").data()),
        gw2(params.grad("fc2.weight").data()),
        gb2(params.grad("fc2.bias").data()),
        rows(train_count),
        w1f(kHidden * kInputs),
        b1f(kHidden),
        w2f(kClasses * kHidden),
        b2f(kClasses),
        h(capacity * kHidden),
        dlogits(capacity * kClasses),
        dh(capacity * kHidden),
        loss(capacity),
        correct(capacity) {}

  // One training batch: rows [first, first + n) of the epoch's order. Writes
  // the gradients of loss_scale * (their summed loss / mean_over) into the
  // arena's gradients.
  // The model copy as floats (exact), for the kernels below.
  void widen_weights() {
    mixprec::convert_n(w1, w1f.size(), raw(w1f));
    mixprec::convert_n(b1, b1f.size(), raw(b1f));
    mixprec::convert_n(w2, w2f.size(), raw(w2f));
    mixprec::convert_n(b2, b2f.size(), raw(b2f));
  }

  void forward_backward(const device_set& train, std::size_t first, std::size_t n, float mean_over,
                        const float* scale) {
    const int* r = raw(rows) + first;
    widen_weights();
    launch(n * kHidden, linear_relu_forward{train.x(), r, raw(w1f), raw(b1f), raw(h), kInputs, kHidden});
    round_buffer<Model>(raw(h), n * kHidden);
    launch(n, output_layer_loss<Model, Grad>{raw(h), raw(w2f), raw(b2f), train.y(), r, mean_over, scale, raw(loss),
                                             nullptr, raw(dlogits)});
    const linear_backward<Grad> fc2{raw(h), nullptr, raw(dlogits), raw(w2f), gw2, gb2, raw(dh), n, kHidden, kClasses};
    launch(fc2.size(), fc2);
    round_buffer<Grad>(raw(dh), n * kHidden);
    const linear_backward<Grad> fc1{train.x(), r, raw(dh), raw(w1f), gw1, gb1, nullptr, n, kInputs, kHidden};
    launch(fc1.size(), fc1);
  }

  struct metrics {
    double loss, accuracy;
  };
  metrics evaluate(const device_set& s) {
    widen_weights();
    launch(s.count * kHidden, linear_relu_forward{s.x(), nullptr, raw(w1f), raw(b1f), raw(h), kInputs, kHidden});
    round_buffer<Model>(raw(h), s.count * kHidden);
    launch(s.count,
           output_layer_loss<Model, Grad>{raw(h), raw(w2f), raw(b2f), s.y(), nullptr, static_cast<float>(s.count),
                                          nullptr, raw(loss), raw(correct), nullptr});
    const auto n = static_cast<std::ptrdiff_t>(s.count);
    const double total = thrust::reduce(thrust::device, loss.begin(), loss.begin() + n, 0.0);
    const long hits = thrust::reduce(thrust::device, correct.begin(), correct.begin() + n, 0l);
    return {total / static_cast<double>(s.count), static_cast<double>(hits) / static_cast<double>(s.count)};
  }
};

// ---------------------------------------------------------------------------
// One configuration

struct epoch_row {
  std::string config;
  int epoch;
  std::uint64_t step;
  double train_loss, train_accuracy, test_loss, test_accuracy;
  float loss_scale;  // NaN: no scaler
  std::uint64_t skipped;
};
// One step of a run with a statistics_log (mixprec::record_statistics).
struct step_row {
  std::string config;
  std::uint64_t step;
  mixprec::statistics_log::record stats;
};

struct result {
  std::string config, model, grad, master;
  double train_loss, train_accuracy, test_loss, test_accuracy;
  std::uint64_t steps, skipped;
  bool has_scale;
  float loss_scale;
  double seconds;
  double bytes;  // per parameter, the whole training state: model, gradient, master weights, optimizer state
  bool control;  // a negative control (--controls), not held to the fp32 accuracy
};

// `log`: the statistics_log the chain's record_statistics writes to, if any.
template <class Model, class Grad, class Master, class Chain>
result run_config(const std::string& name, const Chain& chain, const dataset& data, const options& opt,
                  std::vector<epoch_row>& curves, std::vector<step_row>& steps,
                  const mixprec::statistics_log* log = nullptr) {
  constexpr bool scaled = Chain::has_loss_scaler;
  const auto start = std::chrono::steady_clock::now();

  mixprec::parameters<Model, Grad, Master> params;
  add_mlp(params);
#if defined(MIXPREC_DIGITS_MPI)
  // Every rank its shard (--zero 1, 2) and its share of each batch.
  mixprec::dist::data_parallel<mixprec::dist::mpi_communicator> dp(*opt.comm, {opt.zero});
  dp.finalize(params, chain);
  initialize_mlp(params, opt.seed);
  auto state = dp.init(chain, params);
  const std::size_t rank = static_cast<std::size_t>(dp.rank()), ranks = static_cast<std::size_t>(dp.size());
#else
  params.finalize();
  initialize_mlp(params, opt.seed);
  auto state = chain.init(params);
  const std::size_t rank = 0, ranks = 1;
#endif
  state.set_group("no_decay", {1.0f, 0.0f});  // no weight decay on the biases
  const float* scale = nullptr;
  if constexpr (scaled) scale = state.loss_scale_data();

  const std::size_t n_train = data.train.count;
  const std::size_t capacity = std::max({opt.batch, n_train, data.test.count});
  mlp<Model, Grad> net(params, capacity, n_train);

  auto record_epoch = [&](int epoch, std::uint64_t step) {
    const auto tr = net.evaluate(data.train);
    const auto te = net.evaluate(data.test);
    float s = std::nanf("");
    if constexpr (scaled) s = state.loss_scale();
    curves.push_back({name, epoch, step, tr.loss, tr.accuracy, te.loss, te.accuracy, s, state.step().skipped_total});
  };
  record_epoch(0, 0);

  std::vector<int> order(n_train);
  std::uint64_t step = 0;
  for (int epoch = 1; epoch <= opt.epochs; ++epoch) {
    for (std::size_t i = 0; i < n_train; ++i) order[i] = static_cast<int>(i);
    shuffle(order, opt.seed * 1000003ull + static_cast<std::uint64_t>(epoch));  // the same order for every config
    thrust::copy(order.begin(), order.end(), net.rows.begin());
    for (std::size_t first = 0; first < n_train; first += opt.batch, ++step) {
      const std::size_t n = std::min(opt.batch, n_train - first);
      // This rank's rows of the batch; the ranks' mean gradients average to the batch's.
      const std::size_t lo = n * rank / ranks, hi = n * (rank + 1) / ranks;
      net.forward_backward(data.train, first + lo, hi - lo, static_cast<float>(n) / static_cast<float>(ranks), scale);
#if defined(MIXPREC_DIGITS_MPI)
      dp.step(chain, params, state);
#else
      chain.apply(params, state);
#endif
    }
    record_epoch(epoch, step);
  }

  // What every step saw, recorded on the device; read once, now.
  if (log != nullptr) {
    std::uint64_t k = 0;
    for (const auto& rec : log->read()) steps.push_back({name, ++k, rec});
  }

  const epoch_row& last = curves.back();
  result r;
  r.config = name;
  r.model = mixprec::format_traits<Model>::name;
  r.grad = mixprec::format_traits<Grad>::name;
  r.master = std::is_void_v<Master> ? "none" : "float";
  r.train_loss = last.train_loss;
  r.train_accuracy = last.train_accuracy;
  r.test_loss = last.test_loss;
  r.test_accuracy = last.test_accuracy;
  const mixprec::step_scalars st = state.step();
  r.steps = st.count + st.skipped_total;
  r.skipped = st.skipped_total;
  r.has_scale = scaled;
  r.loss_scale = last.loss_scale;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // fp32 master weights are the model when the model is float (no copy).
  const std::size_t master_bytes = mixprec::parameters<Model, Grad, Master>::model_is_master ? 0
                                   : std::is_void_v<Master>                                  ? 0
                                                                                             : sizeof(float);
  r.bytes = static_cast<double>(sizeof(Model) + sizeof(Grad) + master_bytes) + state.bytes_per_parameter();
  r.control = false;
  return r;
}

// ---------------------------------------------------------------------------
// Output

std::string join_path(const std::string& dir, const char* file) {
  if (dir.empty()) return file;
  return dir.back() == '/' ? dir + file : dir + "/" + file;
}

void write_csv(const std::string& dir, const std::vector<epoch_row>& curves, const std::vector<step_row>& steps,
               std::string& curves_path, std::string& steps_path) {
  curves_path = join_path(dir, "digits_curves.csv");
  steps_path = join_path(dir, "digits_steps.csv");
  std::FILE* f = std::fopen(curves_path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + curves_path);
  std::fprintf(f, "config,epoch,step,train_loss,train_accuracy,test_loss,test_accuracy,loss_scale,skipped_steps\n");
  for (const epoch_row& r : curves) {
    std::fprintf(f, "%s,%d,%llu,%.6g,%.6g,%.6g,%.6g,", r.config.c_str(), r.epoch,
                 static_cast<unsigned long long>(r.step), r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy);
    if (std::isnan(r.loss_scale)) std::fprintf(f, ",");
    else std::fprintf(f, "%.9g,", static_cast<double>(r.loss_scale));
    std::fprintf(f, "%llu\n", static_cast<unsigned long long>(r.skipped));
  }
  const bool curves_ok = std::fclose(f) == 0;
  f = std::fopen(steps_path.c_str(), "w");
  if (!curves_ok || f == nullptr) throw std::runtime_error("cannot write " + (curves_ok ? steps_path : curves_path));
  std::fprintf(f, "config,step,loss_scale,skipped,gradient_norm,learning_rate,zero_fraction,subnormal_fraction\n");
  for (const step_row& r : steps)
    std::fprintf(f, "%s,%llu,%.9g,%d,%.9g,%.9g,%.9g,%.9g\n", r.config.c_str(), static_cast<unsigned long long>(r.step),
                 r.stats.loss_scale, r.stats.skipped ? 1 : 0, r.stats.gradient_norm, r.stats.learning_rate,
                 r.stats.zero_fraction, r.stats.subnormal_fraction);
  if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + steps_path);
}

// What record_statistics saw in each recorded run, in a few numbers. The
// stored fp16 gradients that are exactly zero and those that are fp16
// subnormals are counted apart: most zeros here are not underflow (blank
// pixels give zero gradients to their input weights at any loss scale);
// what a loss scale prevents shows as subnormals, and as the zeros an
// unscaled run has beyond a scaled one (values that flushed to zero).
void print_step_summary(const std::vector<step_row>& steps) {
  for (std::size_t begin = 0; begin < steps.size();) {
    std::size_t end = begin;
    while (end < steps.size() && steps[end].config == steps[begin].config) ++end;
    const auto& first = steps[begin].stats;
    const auto& last = steps[end - 1].stats;
    std::size_t skipped = 0;
    double norm_sum = 0.0, zero_sum = 0.0, subnormal_sum = 0.0, low = first.loss_scale, high = first.loss_scale;
    for (std::size_t k = begin; k < end; ++k) {
      const auto& r = steps[k].stats;
      skipped += r.skipped;
      if (!r.skipped) {
        norm_sum += r.gradient_norm;
        zero_sum += r.zero_fraction;
        subnormal_sum += r.subnormal_fraction;
      }
      low = std::min(low, r.loss_scale);
      high = std::max(high, r.loss_scale);
    }
    const double kept = static_cast<double>(end - begin - skipped);
    std::printf(
        "\n%s, every step (record_statistics, read once after training): %zu steps, %zu skipped,\n"
        "  loss scale %g..%g, mean unscaled gradient norm %.4g; stored fp16 gradients\n"
        "  exactly zero:   %5.1f%% at the first step, %5.1f%% at the last, %5.1f%% on average\n"
        "  fp16 subnormal: %5.1f%% at the first step, %5.1f%% at the last, %5.1f%% on average\n",
        steps[begin].config.c_str(), end - begin, skipped, low, high, norm_sum / kept, 100.0 * first.zero_fraction,
        100.0 * last.zero_fraction, 100.0 * zero_sum / kept, 100.0 * first.subnormal_fraction,
        100.0 * last.subnormal_fraction, 100.0 * subnormal_sum / kept);
    begin = end;
  }
}

void print_json(const std::vector<result>& results) {
  std::printf("[\n");
  for (std::size_t i = 0; i < results.size(); ++i) {
    const result& r = results[i];
    char scale[32];
    if (r.has_scale) std::snprintf(scale, sizeof scale, "%.9g", static_cast<double>(r.loss_scale));
    else std::snprintf(scale, sizeof scale, "null");
    std::printf(
        "  {\"config\": \"%s\", \"backend\": \"%s\", \"model_format\": \"%s\", \"grad_format\": \"%s\", "
        "\"master_format\": \"%s\", \"train_loss\": %.6g, \"train_accuracy_pct\": %.4f, \"test_loss\": %.6g, "
        "\"test_accuracy_pct\": %.4f, \"steps\": %llu, \"skipped_steps\": %llu, \"loss_scale\": %s, "
        "\"bytes_per_parameter\": %.4g, \"wall_s\": %.3f, \"control\": %s}%s\n",
        r.config.c_str(), mixprec::backend_name(mixprec::current_backend), r.model.c_str(), r.grad.c_str(),
        r.master.c_str(), r.train_loss, 100.0 * r.train_accuracy, r.test_loss, 100.0 * r.test_accuracy,
        static_cast<unsigned long long>(r.steps), static_cast<unsigned long long>(r.skipped), scale, r.bytes, r.seconds,
        r.control ? "true" : "false", i + 1 < results.size() ? "," : "");
  }
  std::printf("]\n");
}

void print_table(const options& opt, const dataset& data, const std::vector<result>& results) {
  std::printf("mixprec %d.%d.%d train_digits, backend: %s\n", mixprec::version_major, mixprec::version_minor,
              mixprec::version_patch, mixprec::backend_name(mixprec::current_backend));
#if defined(MIXPREC_DIGITS_MPI)
  std::printf("data parallel over %d ranks (mpi_communicator), ZeRO stage %d\n", opt.comm->size(), opt.zero);
#endif
  std::printf(
      "MLP %zu-%zu-%zu on the UCI digits (%zu train / %zu test), AdamW lr %g, weight decay %g (biases 0), "
      "batch %zu, %d epochs\n\n",
      kInputs, kHidden, kClasses, data.train.count, data.test.count, static_cast<double>(opt.lr),
      static_cast<double>(opt.weight_decay), opt.batch, opt.epochs);
  std::printf("%-26s %-29s %7s %10s %10s %8s %11s %8s\n", "config", "model / grad / master", "B/param", "train loss",
              "test acc %", "skipped", "loss scale", "time s");
  for (const result& r : results) {
    const std::string formats = r.model + " / " + r.grad + " / " + r.master;
    char scale[32];
    if (r.has_scale) std::snprintf(scale, sizeof scale, "%g", static_cast<double>(r.loss_scale));
    else std::snprintf(scale, sizeof scale, "-");
    std::printf("%-26s %-29s %7.2f %10.4f %10.2f %8llu %11s %8.2f\n", r.config.c_str(), formats.c_str(), r.bytes,
                r.train_loss, 100.0 * r.test_accuracy, static_cast<unsigned long long>(r.skipped), scale, r.seconds);
  }
  double worst = 0.0;
  for (const result& r : results)
    if (!r.control) worst = std::max(worst, std::fabs(r.test_accuracy - results.front().test_accuracy));
  std::printf("\nlargest test-accuracy gap to fp32: %.2f points%s\n", 100.0 * worst,
              opt.controls ? " (controls excluded)" : "");
}

}  // namespace

int main(int argc, char** argv) {
#if defined(MIXPREC_DIGITS_MPI)
  MPI_Init(&argc, &argv);
  struct finalize_mpi {
    ~finalize_mpi() { MPI_Finalize(); }
  } at_exit;
#endif
  options opt = parse_options(argc, argv);
  bool report = true;  // rank 0 prints and writes the files
  try {
#if defined(MIXPREC_DIGITS_MPI)
    mixprec::dist::mpi_communicator comm(MPI_COMM_WORLD);
    opt.comm = &comm;
    report = comm.rank() == 0;
    if (!report) opt.csv = false;
#endif
    const dataset data = split(read_digits(opt.data));

    mixprec::adamw_options o;
    o.lr = opt.lr;
    o.weight_decay = opt.weight_decay;
    mixprec::dynamic_loss_scale scaler;
    scaler.growth_interval = 100;  // PyTorch's 2000 is longer than this whole run

    std::vector<result> results;
    std::vector<epoch_row> curves;
    std::vector<step_row> steps;
    std::string curves_path, steps_path;
    if (opt.csv) write_csv(opt.out, curves, steps, curves_path, steps_path);  // fail now, not after training
    // Every step of the fp16 runs, recorded on the device (read after training).
    const std::size_t steps_per_run =
        (data.train.count + opt.batch - 1) / opt.batch * static_cast<std::size_t>(opt.epochs);
    mixprec::statistics_log fp16_log(steps_per_run), fp16_control_log(steps_per_run);
    const auto t0 = std::chrono::steady_clock::now();
    results.push_back(
        run_config<float, float, float>("fp32", mixprec::chain(mixprec::adamw(o)), data, opt, curves, steps));
    results.push_back(run_config<half, half, float>("fp16+master+dynamic-scale",
                                                    mixprec::chain(scaler, fp16_log.recorder(), mixprec::adamw(o)),
                                                    data, opt, curves, steps, &fp16_log));
    results.push_back(run_config<bfloat16, bfloat16, float>("bf16+master", mixprec::chain(mixprec::adamw(o)), data, opt,
                                                            curves, steps));
    results.push_back(run_config<bfloat16, bfloat16, float>(
        "bf16+master+bf16-moments", mixprec::chain(mixprec::adamw<bfloat16>(o)), data, opt, curves, steps));
    results.push_back(run_config<bfloat16, bfloat16, float>(
        "bf16+master+8bit-moments", mixprec::chain(mixprec::adamw<mixprec::block_quantized<mixprec::dynamic8>>(o)),
        data, opt, curves, steps));
    results.push_back(run_config<bfloat16, bfloat16, float>(
        "bf16+master+fp8-moments", mixprec::chain(mixprec::adamw<mixprec::block_quantized<fp8_e4m3>>(o)), data, opt,
        curves, steps));
    results.push_back(run_config<bfloat16, bfloat16, void>(
        "pure-bf16+stochastic", mixprec::chain(mixprec::adamw<bfloat16>(o), mixprec::round_model_stochastic{opt.seed}),
        data, opt, curves, steps));
    results.push_back(run_config<bfloat16, bfloat16, void>(
        "bf16+kahan", mixprec::chain(mixprec::adamw(o), mixprec::kahan_summation<bfloat16>{}), data, opt, curves,
        steps));
    results.push_back(run_config<bfloat16, bfloat16, void>(
        "bf16+kahan+8bit-moments",
        mixprec::chain(mixprec::adamw<mixprec::block_quantized<mixprec::dynamic8>>(o),
                       mixprec::kahan_summation<bfloat16>{}),
        data, opt, curves, steps));
    if (opt.fp8)
      results.push_back(run_config<fp8_e4m3, bfloat16, float>("fp8-e4m3+master", mixprec::chain(mixprec::adamw(o)),
                                                              data, opt, curves, steps));
    if (opt.controls) {
      results.push_back(run_config<half, half, float>("control:fp16-no-scaling",
                                                      mixprec::chain(fp16_control_log.recorder(), mixprec::adamw(o)),
                                                      data, opt, curves, steps, &fp16_control_log));
      results.back().control = true;
      results.push_back(run_config<bfloat16, bfloat16, void>(
          "control:pure-bf16-nearest", mixprec::chain(mixprec::adamw(o)), data, opt, curves, steps));
      results.back().control = true;
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (opt.csv) write_csv(opt.out, curves, steps, curves_path, steps_path);
    if (!report) {
    } else if (opt.json) {
      print_json(results);
    } else {
      print_table(opt, data, results);
      print_step_summary(steps);
      std::printf("total training time: %.2f s\n", total);
      if (opt.csv)
        std::printf("curves: %s, %s\nplot:   python3 examples/train_digits/plot.py --dir %s\n", curves_path.c_str(),
                    steps_path.c_str(), opt.out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_digits: %s\n", e.what());
#if defined(MIXPREC_DIGITS_MPI)
    MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks may be waiting in a collective
#endif
    return 1;
  }
  return 0;
}
