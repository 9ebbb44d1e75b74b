// Data parallel and ZeRO over NCCL on the CUDA backend (compiled in every
// CUDA build; scripts/gpu-check.sh runs it on a GPU machine). One rank: a
// ZeRO-1 step through NCCL equals the chain's own step bit for bit. Two
// ranks (two GPUs, one thread each): the averaged gradients equal the mean
// over both batches to fp32 rounding, and ZeRO-2 equals data parallel.
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <doctest/doctest.h>

#include <mixprec/dist/data_parallel.hpp>
#include <mixprec/dist/nccl_communicator.hpp>
#include <mixprec/mixprec.hpp>

#include "problem.hpp"

using namespace mixprec;

namespace {

constexpr std::size_t batch = 4;

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

auto make_chain() {
  dynamic_loss_scale scaler;
  scaler.init_scale = 1024.0f;
  adamw_options o;
  o.lr = 1e-2f;
  return chain(scaler, clip_by_global_norm{0.5f}, adamw(o));
}

}  // namespace

TEST_SUITE("dist") {
  TEST_CASE("nccl_options::timeout: NaN and zero and negative timeouts are refused before NCCL is called") {
    for (double bad : {std::nan(""), 0.0, -1.0, -HUGE_VAL}) {
      CAPTURE(bad);
      dist::nccl_options o;
      o.timeout = std::chrono::duration<double>(bad);
      std::string msg = "<no exception>";
      try {
        dist::nccl_communicator comm(ncclComm_t{}, o);  // refused before the communicator is used
      } catch (const mixprec::error& e) {
        msg = e.what();
      }
      CHECK(msg.find("nccl_communicator: nccl_options::timeout: the timeout must be a positive number of seconds") !=
            std::string::npos);
    }
  }

  TEST_CASE("one NCCL rank: a ZeRO-1 step through NCCL equals the chain's own step bit for bit") {
    REQUIRE(device_count() >= 1);
    const auto step = make_chain();
    ncclComm_t nccl;
    int device = 0;
    REQUIRE(ncclCommInitAll(&nccl, 1, &device) == ncclSuccess);
    {
      dist::nccl_communicator comm(nccl);
      dist::data_parallel<dist::nccl_communicator> dp(comm, {1});
      parameters<bfloat16, half> a, b;
      test::dist::add_parameters(a);
      test::dist::add_parameters(b);
      dp.finalize(a, step);
      b.finalize();
      a.initialize_all(init::kaiming_uniform{}, 3);
      b.initialize_all(init::kaiming_uniform{}, 3);
      auto sa = dp.init(step, a);
      auto sb = step.init(b);
      for (int t = 1; t <= 30; ++t) {
        const std::vector<float> g = test::dist::gradient(test::dist::model_as_float(a), t, 0, batch);
        test::dist::write_gradients(a, g, sa.loss_scale());
        test::dist::write_gradients(b, g, sb.loss_scale());
        dp.step(step, a, sa);
        step.apply(b, sb);
      }
      comm.synchronize({});
      CHECK(a.to_host(role::model) == b.to_host(role::model));
      CHECK(a.to_host(role::master) == b.to_host(role::master));
      CHECK(sa.loss_scale() == sb.loss_scale());
    }
    ncclCommDestroy(nccl);
  }

  TEST_CASE("two NCCL ranks on two GPUs: averaged gradients and ZeRO-2 against data parallel") {
    if (device_count() < 2) {
      MESSAGE("one GPU: the two-rank case needs two");
      return;
    }
    const auto step = make_chain();
    using arena = parameters<bfloat16, float>;
    const int devices[2] = {0, 1};
    ncclComm_t nccl[2];
    REQUIRE(ncclCommInitAll(nccl, 2, devices) == ncclSuccess);
    double worst_gradient[2] = {0, 0};
    std::vector<float> model[2][2];  // [stage 0 or 2][rank]
    auto rank_main = [&](int r) {
      cudaSetDevice(devices[r]);
      dist::nccl_communicator comm(nccl[r]);
      for (int k = 0; k < 2; ++k) {
        dist::data_parallel<dist::nccl_communicator> dp(comm, {k == 0 ? 0 : 2});
        arena p;
        test::dist::add_parameters(p);
        dp.finalize(p, step);
        p.initialize_all(init::kaiming_uniform{}, 3);
        auto st = dp.init(step, p);
        for (int t = 1; t <= 30; ++t) {
          const std::vector<float> w = test::dist::model_as_float(p);
          if (k == 0) {
            test::dist::write_gradients(p, test::dist::gradient(w, t, static_cast<std::size_t>(r) * batch, batch),
                                        1.0f);
            dp.reduce_gradients(p);
            comm.synchronize({});
            const std::vector<float> mean = test::dist::gradient(w, t, 0, 2 * batch);
            const std::vector<float> got = test::dist::device_range(p.grad_data(), mean.size());
            for (std::size_t i = 0; i < mean.size(); ++i)
              worst_gradient[r] =
                  std::max(worst_gradient[r], std::fabs(static_cast<double>(got[i]) - mean[i]) /
                                                  std::max(1.0, std::fabs(static_cast<double>(mean[i]))));
          }
          test::dist::write_gradients(p, test::dist::gradient(w, t, static_cast<std::size_t>(r) * batch, batch),
                                      st.loss_scale());
          dp.step(step, p, st);
        }
        comm.synchronize({});
        model[k][r] = test::dist::model_as_float(p);
      }
    };
    std::thread other(rank_main, 1);
    rank_main(0);
    other.join();
    for (ncclComm_t c : nccl) ncclCommDestroy(c);
    // The two per-rank means and their average, each rounded to fp32 once.
    CHECK(worst_gradient[0] <= 4 * 0x1p-24 * 4);
    CHECK(worst_gradient[1] <= 4 * 0x1p-24 * 4);
    CHECK(model[0][0] == model[0][1]);  // every rank holds the same model copy
    CHECK(model[1][0] == model[1][1]);
    // ZeRO-2 against data parallel: the same gradients; the global norm
    // summed in another order may move the clip factor by an fp32 rounding,
    // and a bf16 model weight by an ulp (2^-7 relative, |w| < 1) in a step.
    double worst = 0.0;
    for (std::size_t i = 0; i < model[0][0].size(); ++i)
      worst = std::max(worst, std::fabs(static_cast<double>(model[0][0][i]) - model[1][0][i]));
    MESSAGE("two NCCL ranks: ZeRO-2 within " << worst << " of data parallel after 30 steps");
    CHECK(worst <= 30 * 0x1p-7);
  }

}  // TEST_SUITE
