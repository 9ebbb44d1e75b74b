// Block-quantized 8-bit moments (format/block_codes.hpp, train/coded_blocks.hpp)
// against an independent float32 transcription of block-wise AdamW
// (tests/data/adamw_blockwise_reference.txt, scripts/reference/adamw_blockwise.py):
// the two dynamic maps entry by entry, the codes and scales of hand-picked
// blocks, and 200 steps of AdamW with dynamic8 and e4m3 moments on
// parameters of whole, several and partial blocks (two of them with
// gradients that reach the second moments' zero point), where every
// checked code and scale must be the reference's exactly and every weight
// too.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <mixprec/mixprec.hpp>

#include "../support/device.hpp"
#include "../support/errors.hpp"
#include "../support/reference_file.hpp"
#include "../support/synthetic.hpp"

using namespace mixprec;

namespace {

const test::reference_case& coded_case(const std::vector<test::reference_case>& cases, const std::string& name) {
  for (const auto& c : cases)
    if (c.name == name) return c;
  FAIL("no case " << name);
  return cases.front();
}

std::vector<double> numbers_from(const test::reference_line& l, std::size_t first) {
  std::vector<double> out;
  for (std::size_t k = first; k < l.values.size(); ++k) out.push_back(l.number(k));
  return out;
}

bool same_float(float a, double b) {
  const float r = static_cast<float>(b);
  return std::memcmp(&a, &r, sizeof a) == 0 || (a != a && r != r);
}

const std::vector<shape> coded_shapes = {{2, 300}, {7}, {16, 16}, {5, 13}};

struct coded_result {
  std::size_t checked = 0, weight_mismatches = 0, code_mismatches = 0, scale_mismatches = 0;
  double worst_weight = 0;
};

// Compares one "m_codes"/"v_codes" and "m_scales"/"v_scales" record with the state.
void compare_codes(const test::reference_case& c, const char* codes_key, const char* scales_key, std::uint64_t t,
                   const std::vector<std::uint8_t>& codes, const std::vector<float>& scales,
                   const parameters<float, float>& p, std::uint32_t block, coded_result& r) {
  for (const auto* l : c.all(codes_key)) {
    if (static_cast<std::uint64_t>(l->number(0)) != t) continue;
    const auto k = static_cast<std::size_t>(l->number(1));
    const std::vector<double> want = numbers_from(*l, 3);
    REQUIRE(want.size() == p[k].size);
    for (std::size_t i = 0; i < want.size(); ++i)
      r.code_mismatches += codes[p[k].offset + i] != static_cast<std::uint8_t>(want[i]) ? 1 : 0;
  }
  for (const auto* l : c.all(scales_key)) {
    if (static_cast<std::uint64_t>(l->number(0)) != t) continue;
    const auto k = static_cast<std::size_t>(l->number(1));
    std::size_t first = 0;
    for (std::size_t j = 0; j < k; ++j) first += (p[j].size + block - 1) / block;
    const std::vector<double> want = numbers_from(*l, 3);
    REQUIRE(want.size() == (p[k].size + block - 1) / block);
    for (std::size_t b = 0; b < want.size(); ++b) r.scale_mismatches += same_float(scales[first + b], want[b]) ? 0 : 1;
  }
}

// An arena of the reference shapes with the synthetic weights, and step t's gradients.
void fill_coded_weights(parameters<float, float>& p) {
  for (std::size_t k = 0; k < coded_shapes.size(); ++k) p.add("p" + std::to_string(k), coded_shapes[k]);
  p.finalize();
  std::vector<float> w(p.padded_size(), 0.0f);
  for (std::size_t k = 0; k < coded_shapes.size(); ++k)
    for (std::size_t i = 0; i < p[k].size; ++i) w[p[k].offset + i] = test::initial_weight(k, i);
  detail::write_to_device(w.data(), p.master_data(), w.size());
  p.sync_model();
}
void fill_coded_gradients(parameters<float, float>& p, std::uint64_t t) {
  std::vector<float> g(p.padded_size(), 0.0f);
  for (std::size_t k = 0; k < coded_shapes.size(); ++k)
    for (std::size_t i = 0; i < p[k].size; ++i) g[p[k].offset + i] = test::synthetic_gradient(t, k, i, 1.0f);
  detail::write_to_device(g.data(), p.grad_data(), g.size());
}
template <class Format>
coded_result run_coded_case(const test::reference_case& c) {
  parameters<float, float> p;
  fill_coded_weights(p);
  adamw_options o;
  o.lr = static_cast<float>(c.number("lr"));
  o.beta1 = static_cast<float>(c.number("beta1"));
  o.beta2 = static_cast<float>(c.number("beta2"));
  o.eps = static_cast<float>(c.number("eps"));
  o.weight_decay = static_cast<float>(c.number("weight_decay"));
  const auto step = adamw<Format>(o);
  auto state = step.init(p);
  std::vector<std::uint64_t> checks;
  for (const auto* l : c.all("check")) {
    const auto t = static_cast<std::uint64_t>(l->number(0));
    if (checks.empty() || checks.back() != t) checks.push_back(t);
  }
  coded_result r;
  std::vector<float> g(p.padded_size(), 0.0f);
  std::size_t next = 0;
  // small_every_8th_zero_every_3rd_step: every 8th element's gradient
  // 1e-4 times smaller, and 0 on every 3rd step (second moments far below
  // their block's largest, then a step without gradient: the zero point).
  const bool sparse = c.has("grad_rule");
  if (sparse) REQUIRE(c.text("grad_rule") == "small_every_8th_zero_every_3rd_step");
  for (std::uint64_t t = 1; t <= 200 && next < checks.size(); ++t) {
    for (std::size_t k = 0; k < coded_shapes.size(); ++k)
      for (std::size_t i = 0; i < p[k].size; ++i) {
        float v = test::synthetic_gradient(t, k, i, 1.0f);
        if (sparse && i % 8 == 0) v = t % 3 == 0 ? 0.0f : v * 1e-4f;
        g[p[k].offset + i] = v;
      }
    detail::write_to_device(g.data(), p.grad_data(), g.size());
    step.apply(p, state);
    if (t != checks[next]) continue;
    ++next;
    const std::vector<float> master = test::to_host(p.master_data(), p.padded_size());
    for (const auto* l : c.all("check")) {
      if (static_cast<std::uint64_t>(l->number(0)) != t) continue;
      const auto k = static_cast<std::size_t>(l->number(1));
      const std::vector<double> want = numbers_from(*l, 3);
      REQUIRE(want.size() == p[k].size);
      for (std::size_t i = 0; i < want.size(); ++i) {
        const float got = master[p[k].offset + i];
        r.weight_mismatches += same_float(got, want[i]) ? 0 : 1;
        r.worst_weight = std::fmax(r.worst_weight, std::fabs(static_cast<double>(got) - want[i]));
        ++r.checked;
      }
    }
    for (const char* m : {"m", "v"}) {
      const auto view = state.template coded_field<2>(m[0] == 'm' ? "exp_avg" : "exp_avg_sq");
      const std::vector<std::uint8_t> codes = test::to_host(view.codes, view.entries);
      const std::vector<float> scales = test::to_host(view.scales, view.blocks);
      compare_codes(c, m[0] == 'm' ? "m_codes" : "v_codes", m[0] == 'm' ? "m_scales" : "v_scales", t, codes, scales, p,
                    view.block, r);
    }
  }
  CHECK(next == checks.size());
  return r;
}

coded_result run_coded_reference(const test::reference_case& c) {
  const std::string policy = c.text("policy");
  const auto block = static_cast<int>(c.number("block_size"));
  if (policy == "dynamic8" && block == 256) return run_coded_case<block_quantized<dynamic8, 256>>(c);
  if (policy == "dynamic8" && block == 64) return run_coded_case<block_quantized<dynamic8, 64>>(c);
  if (policy == "e4m3" && block == 256) return run_coded_case<block_quantized<fp8_e4m3, 256>>(c);
  if (policy == "e4m3" && block == 32) return run_coded_case<block_quantized<fp8_e4m3, 32>>(c);
  if (policy == "e4m3" && block == 64) return run_coded_case<block_quantized<fp8_e4m3, 64>>(c);
  FAIL("no configuration for " << policy << " " << block);
  return {};
}

std::string coded_temp_path(const char* name) { return std::string("/tmp/mixprec_test_coded_") + name; }

// Largest |w - v| between two arenas' master weights.
double master_distance(const parameters<float, float>& a, const parameters<float, float>& b) {
  const std::vector<float> x = test::to_host(a.master_data(), a.padded_size());
  const std::vector<float> y = test::to_host(b.master_data(), b.padded_size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::fmax(d, std::fabs(static_cast<double>(x[i]) - y[i]));
  return d;
}

// T steps of `coded` and of `reference` (the same optimizer with float
// state) from the same weights and gradients: the largest weight difference.
template <class Coded, class Reference>
double distance_after(const Coded& coded, const Reference& reference, std::uint64_t steps) {
  parameters<float, float> a, b;
  fill_coded_weights(a);
  fill_coded_weights(b);
  auto sa = coded.init(a);
  auto sb = reference.init(b);
  for (std::uint64_t t = 1; t <= steps; ++t) {
    fill_coded_gradients(a, t);
    fill_coded_gradients(b, t);
    coded.apply(a, sa);
    reference.apply(b, sb);
  }
  return master_distance(a, b);
}

}  // namespace

TEST_SUITE("optim") {
  TEST_CASE("the dynamic quantization maps match the reference entry by entry") {
    const auto cases = test::read_reference("adamw_blockwise_reference.txt");
    for (const bool is_signed : {true, false}) {
      const test::reference_case& c = coded_case(cases, is_signed ? "map_signed" : "map_unsigned");
      const std::vector<double> want = numbers_from(c.get("entries"), 1);
      REQUIRE(want.size() == 256);
      const float* map = is_signed ? detail::dynamic_map_signed.v : detail::dynamic_map_unsigned.v;
      int mismatches = 0;
      for (int k = 0; k < 256; ++k) mismatches += same_float(map[k], want[static_cast<std::size_t>(k)]) ? 0 : 1;
      CHECK(mismatches == 0);
      const auto zero = static_cast<std::uint8_t>(c.number("zero_code"));
      CHECK((is_signed ? detail::block_code<format_id::dynamic8s>::encode(0.0f, 0.0f)
                       : detail::block_code<format_id::dynamic8u>::encode(0.0f, 0.0f)) == zero);
    }
  }

  TEST_CASE("hand-picked blocks get the reference's scales and codes and decoded values") {
    const auto cases = test::read_reference("adamw_blockwise_reference.txt");
    const test::reference_case& c = coded_case(cases, "codec");
    const auto blocks = c.all("block");
    REQUIRE(blocks.size() >= 10);
    for (const auto* b : blocks) {
      const std::string j = b->values.at(0), label = b->values.at(1);
      const bool is_signed = b->values.at(2) == "signed";
      const std::vector<double> xs = numbers_from(*b, 4);
      float absmax = 0.0f;
      for (double x : xs) absmax = std::fmax(absmax, std::fabs(static_cast<float>(x)));
      for (const char* policy : {"dynamic8", "e4m3"}) {
        const bool e4m3 = policy[0] == 'e';
        const test::reference_line* codes = nullptr;
        const test::reference_line* decoded = nullptr;
        for (const auto* l : c.all(policy))
          if (l->values.at(0) == j) codes = l;
        for (const auto* l : c.all(std::string(policy) + "_decoded"))
          if (l->values.at(0) == j) decoded = l;
        REQUIRE(codes != nullptr);
        REQUIRE(decoded != nullptr);
        const auto code_of = [&](float x, float scale) {
          if (e4m3)
            return is_signed ? detail::block_code<format_id::e4m3>::encode(x, scale)
                             : detail::block_code<format_id::e4m3u>::encode(x, scale);
          return is_signed ? detail::block_code<format_id::dynamic8s>::encode(x, scale)
                           : detail::block_code<format_id::dynamic8u>::encode(x, scale);
        };
        const auto value_of = [&](std::uint8_t code, float scale) {
          if (e4m3)
            return is_signed ? detail::block_code<format_id::e4m3>::decode(code, scale)
                             : detail::block_code<format_id::e4m3u>::decode(code, scale);
          return is_signed ? detail::block_code<format_id::dynamic8s>::decode(code, scale)
                           : detail::block_code<format_id::dynamic8u>::decode(code, scale);
        };
        const float scale = e4m3 ? detail::block_code<format_id::e4m3>::scale_of(absmax)
                                 : detail::block_code<format_id::dynamic8s>::scale_of(absmax);
        INFO("block " << j << " (" << label << "), " << std::string(policy));
        CHECK(same_float(scale, codes->number(1)));
        const std::vector<double> want_codes = numbers_from(*codes, 3), want_values = numbers_from(*decoded, 2);
        REQUIRE(want_codes.size() == xs.size());
        REQUIRE(want_values.size() == xs.size());
        int code_mismatches = 0, value_mismatches = 0;
        for (std::size_t i = 0; i < xs.size(); ++i) {
          const std::uint8_t code = code_of(static_cast<float>(xs[i]), scale);
          code_mismatches += code != static_cast<std::uint8_t>(want_codes[i]) ? 1 : 0;
          value_mismatches += same_float(value_of(code, scale), want_values[i]) ? 0 : 1;
        }
        CHECK(code_mismatches == 0);
        CHECK(value_mismatches == 0);
      }
    }
  }

  TEST_CASE("AdamW with 8-bit block-quantized moments follows the block-wise transcription bit for bit") {
    const auto cases = test::read_reference("adamw_blockwise_reference.txt");
    int ran = 0;
    for (const auto& c : cases) {
      if (!c.has("policy")) continue;
      ++ran;
      const coded_result r = run_coded_reference(c);
      INFO("case " << c.name << ": " << r.checked << " weights checked, worst difference " << r.worst_weight);
      CHECK(r.checked > 0);
      CHECK(r.weight_mismatches == 0);
      CHECK(r.code_mismatches == 0);
      CHECK(r.scale_mismatches == 0);
    }
    CHECK(ran == 6);
  }

  TEST_CASE("SGD momentum and Lion with 8-bit momentum stay within the codes' resolution of float momentum") {
    // Encoding a value of a block whose largest magnitude is A errs by at
    // most e * A: e = half the widest gap between neighbouring codes of the
    // signed dynamic map (its top decade: 0.9 / 64 / 2), or 2^-4 for e4m3
    // (three mantissa bits, relative to the value, itself at most A).
    // Gradients lie in [-1, 1], so SGD's momentum buffer (b m + g) stays
    // below A = 1 / (1 - b); the error stored at one step decays by b per
    // step, so the stored buffer errs by at most e A / (1 - b), and over T
    // steps of learning rate lr the weights move apart by at most
    // lr T e / (1 - b)^2.
    const std::uint64_t steps = 50;
    sgd_options o;
    o.lr = 0.01f;
    o.momentum = 0.9f;
    const double spread = o.lr * steps / ((1 - 0.9) * (1 - 0.9));
    const double dynamic_bound = spread * (0.9 / 64 / 2), e4m3_bound = spread * 0.0625;
    const double d8 = distance_after(sgd<block_quantized<dynamic8>>(o), sgd(o), steps);
    const double f8 = distance_after(sgd<block_quantized<fp8_e4m3, 64>>(o), sgd(o), steps);
    INFO("sgd: dynamic8 " << d8 << " (bound " << dynamic_bound << "), e4m3 " << f8 << " (bound " << e4m3_bound << ")");
    CHECK(d8 > 0);
    CHECK(d8 <= dynamic_bound);
    CHECK(f8 <= e4m3_bound);
    // Lion after one step from zero: the same momentum in both runs, so each
    // decoded entry lies within e * (its block's scale) of the float one
    // (the bound is reached: -A has no code and decodes to the map's lowest
    // value, -(1 - 0.9 / 64 / 2) A).
    lion_options lo;
    lo.lr = 1e-3f;
    const auto coded_lion = lion<block_quantized<dynamic8, 64>>(lo);
    const auto float_lion = lion(lo);
    parameters<float, float> a, b;
    fill_coded_weights(a);
    fill_coded_weights(b);
    auto sa = coded_lion.init(a);
    auto sb = float_lion.init(b);
    fill_coded_gradients(a, 1);
    fill_coded_gradients(b, 1);
    coded_lion.apply(a, sa);
    float_lion.apply(b, sb);
    CHECK(master_distance(a, b) == 0.0);       // the first update uses the new momentum unrounded
    constexpr std::size_t momentum_stage = 0;  // lion: scale_by_lion, add_decayed_weights, scale_by_learning_rate
    const auto view = sa.coded_field<momentum_stage>("exp_avg");
    const std::vector<std::uint8_t> codes = test::to_host(view.codes, view.entries);
    const std::vector<float> scales = test::to_host(view.scales, view.blocks);
    const auto exact = sb.field<momentum_stage>("exp_avg");
    const std::vector<float> m = test::to_host(exact.data(), exact.size());
    std::size_t block = 0, beyond = 0;
    for (std::size_t k = 0; k < coded_shapes.size(); ++k)
      for (std::size_t i = 0; i < a[k].size; ++i) {
        const std::size_t e = a[k].offset + i, blk = block + i / view.block;
        const float decoded = detail::block_code<format_id::dynamic8s>::decode(codes[e], scales[blk]);
        // (plus the float rounding of code value * scale: a unit roundoff of the scale)
        beyond += std::fabs(decoded - m[e]) <= (0.9 / 64 / 2 + 0x1p-24) * scales[blk] ? 0 : 1;
        if (i + 1 == a[k].size) block = blk + 1;
      }
    CHECK(beyond == 0);
  }

  TEST_CASE("8-bit moments resume bit for bit from a checkpoint and other formats are refused") {
    adamw_options o;
    o.lr = 5e-3f;
    const auto step = adamw<block_quantized<dynamic8, 64>>(o);
    parameters<float, float> a, b;
    fill_coded_weights(a);
    fill_coded_weights(b);
    auto sa = step.init(a);
    for (std::uint64_t t = 1; t <= 5; ++t) {
      fill_coded_gradients(a, t);
      step.apply(a, sa);
    }
    const std::string path = coded_temp_path("resume.ckpt");
    save_checkpoint(path, step, a, sa);
    auto sb = step.init(b);
    load_checkpoint(path, step, b, sb);
    for (std::uint64_t t = 6; t <= 10; ++t) {
      fill_coded_gradients(a, t);
      fill_coded_gradients(b, t);
      step.apply(a, sa);
      step.apply(b, sb);
    }
    CHECK(master_distance(a, b) == 0.0);
    const auto ma = sa.coded_field<2>("exp_avg"), mb = sb.coded_field<2>("exp_avg_sq");
    CHECK(test::to_host(ma.codes, ma.entries) == test::to_host(sb.coded_field<2>("exp_avg").codes, ma.entries));
    CHECK(test::to_host(mb.scales, mb.blocks) == test::to_host(sa.coded_field<2>("exp_avg_sq").scales, mb.blocks));
    // float moments into the 8-bit chain, and back: refused, nothing changed.
    const auto plain = adamw(o);
    parameters<float, float> c;
    fill_coded_weights(c);
    auto sc = plain.init(c);
    const std::string plain_path = coded_temp_path("plain.ckpt");
    save_checkpoint(plain_path, plain, c, sc);
    const std::vector<std::uint8_t> before = test::to_host(mb.codes, mb.entries);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(plain_path, step, b, sb); }),
                         "is float in the checkpoint but dynamic8 (signed) here"));
    CHECK(test::to_host(mb.codes, mb.entries) == before);
    CHECK(test::contains(test::error_message([&] { load_checkpoint(path, plain, c, sc); }),
                         "is dynamic8 (signed) in the checkpoint but float here"));
    std::remove(path.c_str());
    std::remove(plain_path.c_str());
  }

  TEST_CASE("8-bit moments take a byte per moment and a float per block") {
    parameters<float, float> p;
    p.add("w", {1024, 1024});
    p.finalize();
    const auto fp32 = adamw(adamw_options{}).init(p);
    const auto bf16 = adamw<bfloat16>(adamw_options{}).init(p);
    const auto q8 = adamw<block_quantized<dynamic8>>(adamw_options{}).init(p);
    const auto f8 = adamw<block_quantized<fp8_e4m3, 128>>(adamw_options{}).init(p);
    CHECK(fp32.bytes_per_parameter() == doctest::Approx(8.0));
    CHECK(bf16.bytes_per_parameter() == doctest::Approx(4.0));
    CHECK(q8.bytes_per_parameter() == doctest::Approx(2.0 + 2.0 * 4 / 256));
    CHECK(f8.bytes_per_parameter() == doctest::Approx(2.0 + 2.0 * 4 / 128));
    // Codes are not values: reading them as fp8 without their scales is refused.
    CHECK(test::contains(
        test::error_message([&] { (void)f8.field<2, fp8_e4m3>("exp_avg"); }),
        "is kept in block-scaled 8-bit codes (fp8_e4m3): read its codes and scales with coded_field<K>"));
  }
}
