// Fused CPU kernel of Fan et al.'s approxmatch + matchcost (the PointFlow and PVD/LION
// variants); the algorithm and its provenance are in zoo/metrics/approxmatch.py.
//
// Plain C++ (no torch headers: it builds in about a second), compiled on the machine that runs
// it (-march=native) by zoo/metrics/_approxmatch_native.py and called through ctypes (the GIL is
// released during the call). Per pair and level, two sweeps over the rows of x1, each computing
// the row's kernel entries exp(level * |x1_k - x2_l|^2) from the coordinates (the N x M kernel
// matrix is never stored: recomputing an exponential is cheaper than streaming 16 MB):
//   sweep 1: row sum -> ratioL_k; the column sums sum_k K_kl ratioL_k with the row in L1.
//   (then ratioR, remainR per column)
//   sweep 2: sum_l K_kl ratioR_l -> remainL_k; sum_l K_kl c_kl ratioR_l -> the level's cost.
// With `both`, the swapped order (x1 <-> x2, kernel K^T) runs in the same two sweeps, so each
// exponential serves both orders.
//
// Exact zero skipping: the exponential below returns exactly 0 for arguments below
// Exp<T>::kFloor (-87 in float: no denormals). The columns are visited in blocks of kBlock
// points sorted in Morton order; a block whose bounding box is so far from the row point that
// level * d2 < Exp<T>::kSkip (< kFloor) for every point in it contributes exact zeros to every
// sum, so it is skipped: the result is the same as without skipping (adding +0 changes no float
// sum; rounding is monotone, so the box's bound holds for the computed d2). At the steep levels
// (-16384 .. -256) on unit-scale shapes many blocks are skipped (27 % of all evaluations).
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

namespace {

constexpr int kBlock = 16;  // columns per block: one AVX-512 vector of floats

template <typename T>
struct Exp;

template <>
struct Exp<float> {
  // exp(x) for x <= 0: 2^n p(r), n = round(x log2 e), r = x - n ln 2 (Cody-Waite split),
  // p a degree-6 polynomial (Cephes expf coefficients), relative error ~2 ulp; exactly 0 below
  // kFloor. Plain arithmetic, so the compiler vectorises the loops that call it.
  static constexpr float kFloor = -87.0f;  // 2^-125.5: normal floats above it
  static constexpr float kSkip = -88.0f;   // block skipping threshold (margin below kFloor)
  static inline float eval(float x) {
    const float xc = x < kFloor ? kFloor : x;
    const float t = xc * 1.44269504088896341f;
    const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
    float r = std::fma(n, -0.693359375f, xc);
    r = std::fma(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = std::fma(p, r, 1.3981999507e-3f);
    p = std::fma(p, r, 8.3334519073e-3f);
    p = std::fma(p, r, 4.1665795894e-2f);
    p = std::fma(p, r, 1.6666665459e-1f);
    p = std::fma(p, r, 5.0000001201e-1f);
    p = std::fma(p * r, r, r) + 1.0f;
    const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
    const float s = std::bit_cast<float>(e);
    return x < kFloor ? 0.0f : p * s;
  }
};

template <>
struct Exp<double> {
  // libm's exp (scalar; float64 is for checking, not speed); exactly 0 below -745.2.
  static constexpr double kFloor = -746.0;
  static constexpr double kSkip = -747.0;
  static inline double eval(double x) { return x < kFloor ? 0.0 : std::exp(x); }
};

uint32_t spread_bits(uint32_t v) {  // 10 bits -> every third bit of 30
  v &= 0x3ffu;
  v = (v | (v << 16)) & 0x030000ffu;
  v = (v | (v << 8)) & 0x0300f00fu;
  v = (v | (v << 4)) & 0x030c30c3u;
  v = (v | (v << 2)) & 0x09249249u;
  return v;
}

// Column order: Morton order of the points on a 1024^3 grid over their bounding box.
template <typename T>
void morton_order(const T* x, int64_t m, std::vector<int64_t>& order) {
  T lo[3], hi[3];
  for (int c = 0; c < 3; ++c) lo[c] = hi[c] = x[c];
  for (int64_t l = 0; l < m; ++l)
    for (int c = 0; c < 3; ++c) {
      lo[c] = std::min(lo[c], x[l * 3 + c]);
      hi[c] = std::max(hi[c], x[l * 3 + c]);
    }
  std::vector<uint32_t> code(m);
  for (int64_t l = 0; l < m; ++l) {
    uint32_t key = 0;
    for (int c = 0; c < 3; ++c) {
      const double span = static_cast<double>(hi[c] - lo[c]);
      const double u = span > 0 ? (static_cast<double>(x[l * 3 + c] - lo[c]) / span) : 0.0;
      key |= spread_bits(static_cast<uint32_t>(std::min(1023.0, std::max(0.0, u * 1023.0))))
             << c;
    }
    code[l] = key;
  }
  order.resize(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return code[a] < code[b]; });
}

// One pair's solver state; buffers reused across the pairs a worker thread solves.
template <typename T>
struct Solver {
  int64_t n = 0, m = 0, mp = 0, nb = 0;  // rows, columns, padded columns, column blocks
  // Columns (x2, padded to a multiple of kBlock, Morton order): coordinates (SoA) and state.
  std::vector<T> cx, cy, cz;
  std::vector<T> rem_r, ratio_r, col;                // order A: remainR, ratioR, column sums
  std::vector<T> rem_lb, ratio_lb, col_b, moved_b;  // order B (x1 = the columns)
  std::vector<T> lox, loy, loz, hix, hiy, hiz;       // (nb,) block bounding boxes
  std::vector<T> lower;                              // (nb,) level * min d2 of a row to a block
  std::vector<int32_t> act, all;                     // a row's live blocks; every block
  std::vector<T> kbuf, cbuf;                         // one row of kernel entries / costs
  std::vector<T> rem_l, ratio_l;                     // order A: remainL, ratioL over rows
  std::vector<T> rem_rb;                             // order B: remainR over rows
  std::vector<int64_t> order;
  T span2 = 0;        // squared diagonal of the bounding box of both clouds
  int64_t evals = 0;  // kernel entries evaluated (exponentials), this pair

  void load(const T* x1, const T* x2) {
    mp = (m + kBlock - 1) / kBlock * kBlock;
    nb = mp / kBlock;
    morton_order(x2, m, order);
    for (auto* v : {&cx, &cy, &cz, &rem_r, &ratio_r, &col, &rem_lb, &ratio_lb, &col_b, &moved_b,
                    &kbuf, &cbuf})
      v->assign(mp, T(0));
    for (int64_t l = 0; l < m; ++l) {
      const T* p = x2 + order[l] * 3;
      cx[l] = p[0];
      cy[l] = p[1];
      cz[l] = p[2];
    }
    for (int64_t l = m; l < mp; ++l) {  // padding: copies of the last point, zero mass
      cx[l] = cx[m - 1];
      cy[l] = cy[m - 1];
      cz[l] = cz[m - 1];
    }
    for (auto* v : {&lox, &loy, &loz, &hix, &hiy, &hiz, &lower}) v->assign(nb, T(0));
    act.assign(nb, 0);
    all.resize(nb);
    std::iota(all.begin(), all.end(), 0);
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t s = b * kBlock, e = s + kBlock;
      lox[b] = *std::min_element(&cx[s], &cx[0] + e);
      loy[b] = *std::min_element(&cy[s], &cy[0] + e);
      loz[b] = *std::min_element(&cz[s], &cz[0] + e);
      hix[b] = *std::max_element(&cx[s], &cx[0] + e);
      hiy[b] = *std::max_element(&cy[s], &cy[0] + e);
      hiz[b] = *std::max_element(&cz[s], &cz[0] + e);
    }
    T lo[3], hi[3];
    for (int c = 0; c < 3; ++c) lo[c] = hi[c] = x2[c];
    for (const T* x : {x1, x2})
      for (int64_t k = 0; k < (x == x1 ? n : m); ++k)
        for (int c = 0; c < 3; ++c) {
          lo[c] = std::min(lo[c], x[k * 3 + c]);
          hi[c] = std::max(hi[c], x[k * 3 + c]);
        }
    span2 = 0;
    for (int c = 0; c < 3; ++c) span2 += (hi[c] - lo[c]) * (hi[c] - lo[c]);
  }

  // The blocks whose entries for row point p can be nonzero at `level`: a block whose lower
  // bound of level * d2 is below kSkip holds exact zeros only (see the file's header).
  inline const int32_t* live_blocks(T px, T py, T pz, T level, bool dense, int64_t& count) {
    if (dense) {
      count = nb;
      return all.data();
    }
    const T* __restrict__ ax = lox.data();
    const T* __restrict__ ay = loy.data();
    const T* __restrict__ az = loz.data();
    const T* __restrict__ bx = hix.data();
    const T* __restrict__ by = hiy.data();
    const T* __restrict__ bz = hiz.data();
    T* __restrict__ lw = lower.data();
#pragma omp simd
    for (int64_t b = 0; b < nb; ++b) {
      const T dx = std::max(std::max(ax[b] - px, px - bx[b]), T(0));
      const T dy = std::max(std::max(ay[b] - py, py - by[b]), T(0));
      const T dz = std::max(std::max(az[b] - pz, pz - bz[b]), T(0));
      lw[b] = level * (dx * dx + dy * dy + dz * dz);
    }
    int64_t c = 0;
    int32_t* __restrict__ ap = act.data();
    for (int64_t b = 0; b < nb; ++b) {  // branchless compaction
      ap[c] = static_cast<int32_t>(b);
      c += lw[b] >= Exp<T>::kSkip;
    }
    count = c;
    return act.data();
  }

  // Costs (order A, order B) of one pair: x1 (n, 3) rows, x2 (m, 3) columns.
  template <bool Squared, bool Both>
  void solve(const T* x1, const T* x2, const double* levels, int nlev, double* out) {
    load(x1, x2);
    evals = 0;
    const T eps = T(1e-9);
    // The kernel's initial masses: multiL = m / n, multiR = n / m in C integer division.
    const T multi_l = n >= m ? T(1) : T(m / n);
    const T multi_r = n >= m ? T(n / m) : T(1);
    rem_l.assign(n, multi_l);
    ratio_l.assign(n, T(0));
    rem_rb.assign(n, T(0));
    for (int64_t l = 0; l < m; ++l) rem_r[l] = multi_r;
    if constexpr (Both) {  // order B: x1 = x2 (m points), x2 = x1 (n points)
      const T mb_l = m >= n ? T(1) : T(n / m);
      const T mb_r = m >= n ? T(m / n) : T(1);
      for (int64_t l = 0; l < m; ++l) rem_lb[l] = mb_l;
      rem_rb.assign(n, mb_r);
    }
    T* __restrict__ kbp = kbuf.data();
    T* __restrict__ cbp = cbuf.data();
    const T* __restrict__ xs = cx.data();
    const T* __restrict__ ys = cy.data();
    const T* __restrict__ zs = cz.data();
    double cost_a = 0, cost_b = 0;
    for (int li = 0; li < nlev; ++li) {
      const T level = static_cast<T>(levels[li]);
      const bool dense = level * span2 * T(1.01) >= Exp<T>::kSkip;
      std::fill(col.begin(), col.end(), T(0));
      if constexpr (Both) std::fill(col_b.begin(), col_b.end(), T(0));
      // Sweep 1: ratioL (A) per row; column sums K^T ratioL (A) and K^T remainR_B (B).
      for (int64_t k = 0; k < n; ++k) {
        const T px = x1[k * 3], py = x1[k * 3 + 1], pz = x1[k * 3 + 2];
        int64_t na = 0;
        const int32_t* live = live_blocks(px, py, pz, level, dense, na);
        evals += na * kBlock;
        const T* __restrict__ rr = rem_r.data();
        T acc[kBlock] = {};
        for (int64_t a = 0; a < na; ++a) {
          const int64_t s0 = int64_t(live[a]) * kBlock;
#pragma omp simd
          for (int i = 0; i < kBlock; ++i) {
            const T dx = xs[s0 + i] - px, dy = ys[s0 + i] - py, dz = zs[s0 + i] - pz;
            const T kv = Exp<T>::eval(level * (dx * dx + dy * dy + dz * dz));
            kbp[s0 + i] = kv;
            acc[i] += kv * rr[s0 + i];
          }
        }
        T s = 0;
        for (int i = 0; i < kBlock; ++i) s += acc[i];
        const T rl = rem_l[k] / (eps + s);
        ratio_l[k] = rl;
        T* __restrict__ ca = col.data();
        T* __restrict__ cb = col_b.data();
        const T rb = rem_rb[k];
        for (int64_t a = 0; a < na; ++a) {
          const int64_t s0 = int64_t(live[a]) * kBlock;
#pragma omp simd
          for (int i = 0; i < kBlock; ++i) {
            ca[s0 + i] += kbp[s0 + i] * rl;
            if constexpr (Both) cb[s0 + i] += kbp[s0 + i] * rb;
          }
        }
      }
      // Columns: ratioR, remainR (A); ratioL (B).
      for (int64_t l = 0; l < m; ++l) {
        const T sum_r = rem_r[l] * col[l];
        ratio_r[l] = std::min(rem_r[l] / (sum_r + eps), T(1)) * rem_r[l];
        rem_r[l] = std::max(T(0), rem_r[l] - sum_r);
        if constexpr (Both) {
          ratio_lb[l] = rem_lb[l] / (eps + col_b[l]);
          moved_b[l] = 0;
        }
      }
      // Sweep 2: matched mass and cost (A) per row; ratioR_B per row, its column sums (B).
      double level_a = 0, level_b = 0;
      for (int64_t k = 0; k < n; ++k) {
        const T px = x1[k * 3], py = x1[k * 3 + 1], pz = x1[k * 3 + 2];
        int64_t na = 0;
        const int32_t* live = live_blocks(px, py, pz, level, dense, na);
        evals += na * kBlock;
        const T* __restrict__ rr = ratio_r.data();
        const T* __restrict__ lb = ratio_lb.data();
        T mv[kBlock] = {}, cs[kBlock] = {}, sb[kBlock] = {}, csb[kBlock] = {};
        for (int64_t a = 0; a < na; ++a) {
          const int64_t s0 = int64_t(live[a]) * kBlock;
#pragma omp simd
          for (int i = 0; i < kBlock; ++i) {
            const T dx = xs[s0 + i] - px, dy = ys[s0 + i] - py, dz = zs[s0 + i] - pz;
            const T d2 = dx * dx + dy * dy + dz * dz;
            const T kv = Exp<T>::eval(level * d2);
            const T c = Squared ? d2 : std::sqrt(d2);
            const T w = kv * rr[s0 + i];
            mv[i] += w;
            cs[i] += w * c;
            if constexpr (Both) {
              kbp[s0 + i] = kv;
              const T wb = kv * lb[s0 + i];
              sb[i] += wb;
              csb[i] += wb * c;
            }
          }
        }
        T moved = 0, cst = 0;
        for (int i = 0; i < kBlock; ++i) {
          moved += mv[i];
          cst += cs[i];
        }
        const T rl = ratio_l[k];
        rem_l[k] = std::max(T(0), rem_l[k] - rl * moved);
        level_a += static_cast<double>(rl * cst);
        if constexpr (Both) {
          T sbs = 0, cbs = 0;
          for (int i = 0; i < kBlock; ++i) {
            sbs += sb[i];
            cbs += csb[i];
          }
          const T rem = rem_rb[k];
          const T sum_r = rem * sbs;
          const T rrb = std::min(rem / (sum_r + eps), T(1)) * rem;
          rem_rb[k] = std::max(T(0), rem - sum_r);
          level_b += static_cast<double>(rrb * cbs);
          T* __restrict__ mb = moved_b.data();
          for (int64_t a = 0; a < na; ++a) {
            const int64_t s0 = int64_t(live[a]) * kBlock;
#pragma omp simd
            for (int i = 0; i < kBlock; ++i) mb[s0 + i] += kbp[s0 + i] * rrb;
          }
        }
      }
      cost_a += level_a;
      if constexpr (Both) {
        cost_b += level_b;
        for (int64_t l = 0; l < m; ++l)
          rem_lb[l] = std::max(T(0), rem_lb[l] - ratio_lb[l] * moved_b[l]);
      }
    }
    out[0] = cost_a;
    if constexpr (Both) out[1] = cost_b;
  }
};

template <typename T>
void run(const T* set1, const int64_t* idx1, const T* set2, const int64_t* idx2, int64_t pairs,
         int64_t n, int64_t m, const double* levels, int nlev, int squared, int both, double* out,
         int64_t* evals, int threads) {
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    Solver<T> solver;
    solver.n = n;
    solver.m = m;
    for (int64_t p = next++; p < pairs; p = next++) {
      const T* x1 = set1 + idx1[p] * n * 3;
      const T* x2 = set2 + idx2[p] * m * 3;
      double* o = out + p * (both ? 2 : 1);
      if (squared && both) solver.template solve<true, true>(x1, x2, levels, nlev, o);
      if (squared && !both) solver.template solve<true, false>(x1, x2, levels, nlev, o);
      if (!squared && both) solver.template solve<false, true>(x1, x2, levels, nlev, o);
      if (!squared && !both) solver.template solve<false, false>(x1, x2, levels, nlev, o);
      if (evals) evals[p] = solver.evals;
    }
  };
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, pairs)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

}  // namespace

extern "C" {

// Total match cost (not divided by N) of each pair (x1 = set1[idx1[p]], x2 = set2[idx2[p]]):
// out (pairs,) or, with both, (pairs, 2) holding also the cost of (x1 = set2[idx2[p]],
// x2 = set1[idx1[p]]). set1 (*, n, 3), set2 (*, m, 3) contiguous. evals (pairs,), or null:
// the number of kernel entries (exponentials) evaluated per pair. Returns 0.
int zoo_approxmatch_f32(const float* set1, const int64_t* idx1, const float* set2,
                        const int64_t* idx2, int64_t pairs, int64_t n, int64_t m,
                        const double* levels, int nlev, int squared, int both, double* out,
                        int64_t* evals, int threads) {
  run<float>(set1, idx1, set2, idx2, pairs, n, m, levels, nlev, squared, both, out, evals, threads);
  return 0;
}

int zoo_approxmatch_f64(const double* set1, const int64_t* idx1, const double* set2,
                        const int64_t* idx2, int64_t pairs, int64_t n, int64_t m,
                        const double* levels, int nlev, int squared, int both, double* out,
                        int64_t* evals, int threads) {
  run<double>(set1, idx1, set2, idx2, pairs, n, m, levels, nlev, squared, both, out, evals, threads);
  return 0;
}

// Throughput probe: out[i] = exp(x[i]) with the kernel's float exponential (for the
// benchmark's arithmetic limit).
void zoo_exp_f32(const float* x, float* out, int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = Exp<float>::eval(x[i]);
}
}
