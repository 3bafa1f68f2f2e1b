// FOP's step, the same ATen calls as Pool's Python step (pool.py, buckets.py) on the same
// buffers; built by torch's extension loader from native.py. The names are the update rule's
// (fop_rl/optim/__init__.py, buckets.py): R the gradient's rows (two slots: this step's and
// the previous one's), M the factor of P = M M^T and K = M^T, X = R M, H the hypergradient
// (stored as HT = H^T), D the preconditioned rows, and where a full P with more rows than half
// its width learns from C = R^T R_prev, S = C + C^T. Kronecker buckets: A (KA = A^T) the output
// side's factor, HAT its hypergradient, Y = R P_in and Z = P_out R in two slots.
#include <cmath>
#include <map>
#include <string>
#include <vector>
using at::Tensor;
using Tensors = std::vector<Tensor>;
using Named = std::map<std::string, Tensor>;
static const std::vector<int64_t> kRowsAndCols{1, 2};  // a (B, n, d) bucket's matrix dims

static bool has(const std::vector<std::string>& flags, const char* flag) {
  for (const auto& f : flags)
    if (f == flag) return true;
  return false;
}

// One bucket of a pool (buckets.py): its (B, ., .) views, both slots of R, X, Y and Z; and
// per learned factor (one, or two for Kronecker) its M and H and the variants' views.
struct Bucket {
  bool gram, lowrank, kronecker, lowrank_out;
  Tensor R[2], RT[2], X[2], XT[2], Y[2], Z[2], M, K, HT, D, C, CT, S, A, KA, HAT;
  Tensor norm[2], norm_product;  // hyper_normalize: ||R|| per slot, their product
  Tensors Ms, Hs, abs, col, row;  // per factor; the cap's |M| and its bound's two norms

  Bucket(Named t, const std::vector<std::string>& flags)
      : gram(has(flags, "gram")), lowrank(has(flags, "lowrank")),
        kronecker(has(flags, "kronecker")), lowrank_out(has(flags, "lowrank_out")) {
    for (int s = 0; s < 2; ++s) {
      const auto slot = std::to_string(s);
      R[s] = t.at("R" + slot);
      RT[s] = R[s].mT();
      if (kronecker) {
        Y[s] = t.at("Y" + slot);
        Z[s] = t.at("Z" + slot);
      } else {
        X[s] = t.at("X" + slot);
        XT[s] = X[s].mT();
      }
      if (t.count("norm" + slot)) norm[s] = t.at("norm" + slot);
    }
    M = t.at("M");
    K = M.mT();
    HT = t.at("H").mT();
    D = t.at("D");
    if (gram) {
      C = t.at("C");
      CT = C.mT();
      S = t.at("S");
    }
    if (kronecker) {
      A = t.at("A");
      KA = A.mT();
      HAT = t.at("HA").mT();
    }
    if (t.count("norm_product")) norm_product = t.at("norm_product");
    const int factors = kronecker ? 2 : 1;
    for (int f = 0; f < factors; ++f) {
      const auto i = std::to_string(f);
      Ms.push_back(f == 0 ? M : A);
      Hs.push_back(t.at(f == 0 ? "H" : "HA"));
      if (t.count("abs" + i)) {
        abs.push_back(t.at("abs" + i));
        col.push_back(t.at("col" + i));
        row.push_back(t.at("row" + i));
      }
    }
  }

  // Bucket.hypergradient / KroneckerBucket.hypergradient
  void hypergradient(int64_t cur, double eta) {
    const int64_t prev = 1 - cur;
    if (kronecker) {
      at::bmm_out(HAT, at::bmm(KA, Y[prev]), RT[cur]);
      HAT.baddbmm_(at::bmm(KA, R[cur]), Y[prev].mT(), -eta, -eta);
      at::bmm_out(HT, at::bmm(Z[prev], M).mT(), R[cur]);
      HT.baddbmm_(at::bmm(R[cur], M).mT(), Z[prev], -eta, -eta);
    } else if (gram) {
      at::bmm_out(C, RT[cur], R[prev]);
      at::add_out(S, C, CT);
      HT.baddbmm_(K, S, 0.0, -eta);
    } else {
      at::bmm_out(X[cur], R[cur], M);
      at::bmm_out(HT, XT[prev], R[cur]);
      HT.baddbmm_(XT[cur], R[prev], -eta, -eta);
    }
  }

  // Bucket.precondition / KroneckerBucket.precondition
  void precondition(int64_t cur) {
    if (kronecker) {
      left(right(R[cur], Y[cur]), D);
      left(R[cur], Z[cur]);
      return;
    }
    at::bmm_out(X[cur], R[cur], M);
    if (lowrank) {
      at::baddbmm_out(D, R[cur], X[cur], K);
    } else {
      at::bmm_out(D, X[cur], K);
    }
  }

 private:
  Tensor& right(const Tensor& x, Tensor& out) {  // x P_in
    if (lowrank) return at::baddbmm_out(out, x, at::bmm(x, M), K);
    return at::bmm_out(out, at::bmm(x, M), K);
  }
  Tensor& left(const Tensor& x, Tensor& out) {  // P_out x
    if (lowrank_out) return at::baddbmm_out(out, x, A, at::bmm(KA, x));
    return at::bmm_out(out, A, at::bmm(KA, x));
  }
};

class Pool {
 public:
  // buckets: each bucket's named views and flags (Bucket above); lists and tensors: the
  // pool's flat buffers and its base optimizer's state by name (Pool.native_pool in pool.py);
  // base: "sgd" or "adam"; numbers: the hyper-optimizer's betas and eps, the dtype's tiny
  Pool(std::vector<Named> buckets, std::vector<std::vector<std::string>> flags,
       std::map<std::string, Tensors> lists, Named tensors, std::string base,
       std::map<std::string, double> numbers)
      : lists_(lists), t_(tensors), adam_base_(base == "adam"),
        hyper_normalize_(tensors.count("norm_product") > 0), cap_(tensors.count("abs_M") > 0),
        beta1_(numbers.at("beta1")), beta2_(numbers.at("beta2")), eps_(numbers.at("eps")),
        tiny_(numbers.at("tiny")) {
    for (size_t i = 0; i < buckets.size(); ++i) buckets_.emplace_back(buckets[i], flags[i]);
    slots_[0] = lists_.at("slots0");
    slots_[1] = lists_.at("slots1");
  }

  // Pool.gather and Pool.hypergradients: this step's rows, and H for every factor
  void hypergradients(const Tensors& grads, int64_t cur, double eta) {
    at::_foreach_copy_(slots_[cur], grads);
    if (hyper_normalize_)  // this step's norms: the next step's previous ones
      for (auto& b : buckets_)
        at::linalg_vector_norm_out(b.norm[cur], b.R[cur], 2, kRowsAndCols, true);
    for (auto& b : buckets_) b.hypergradient(cur, eta);
    if (hyper_normalize_) {  // Pool._hyper_normalize
      auto& product = t_.at("norm_product");
      at::mul_out(product, t_.at("norm0"), t_.at("norm1")).clamp_min_(tiny_);
      for (auto& b : buckets_)
        for (auto& H : b.Hs) H.div_(b.norm_product);
    }
  }

  // Pool.learn, Pool.precondition and Pool.base_step
  void update(int64_t cur, double hyper_lr, const std::map<std::string, double>& base) {
    t_.at("step_count").add_(1);
    at::_fused_adam_({t_.at("M")}, {t_.at("H")}, {t_.at("exp_avg")}, {t_.at("exp_avg_sq")}, {},
                     {t_.at("step_count")}, hyper_lr, beta1_, beta2_, 0.0, eps_, false, false);
    if (cap_) this->cap();
    for (auto& b : buckets_) b.precondition(cur);
    const auto& params = lists_.at("params");
    const auto& D = lists_.at("D_params");
    const bool maximize = base.at("maximize") != 0;
    if (adam_base_) {
      auto& steps = lists_.at("step");
      at::_foreach_add_(steps, 1);
      at::_fused_adam_(params, D, lists_.at("exp_avg"), lists_.at("exp_avg_sq"), {}, steps,
                       base.at("lr"), base.at("beta1"), base.at("beta2"),
                       base.at("weight_decay"), base.at("eps"), false, maximize);
    } else {
      at::_fused_sgd_(params, D, lists_.at("momentum_buffer"), base.at("weight_decay"),
                      base.at("momentum"), base.at("lr"), base.at("dampening"),
                      base.at("nesterov") != 0, maximize, false);
    }
  }

  // the whole step of a pool alone: false, with nothing learned or stepped, where a gradient
  // or hypergradient is not finite (FOP._all_finite)
  bool step(const Tensors& grads, int64_t cur, double eta, double hyper_lr,
            const std::map<std::string, double>& base) {
    hypergradients(grads, cur, eta);
    if (!std::isfinite(lists_.at("checked")[cur].sum().item<double>())) return false;
    update(cur, hyper_lr, base);
    return true;
  }

 private:
  // Pool._cap: M rescaled so that the bound ||M||_1 ||M||_inf of P's largest eigenvalue stays
  // within the cap's room
  void cap() {
    at::abs_out(t_.at("abs_M"), t_.at("M"));
    for (auto& b : buckets_) {
      for (size_t f = 0; f < b.abs.size(); ++f) {
        at::amax_out(b.col[f], b.abs[f].sum(1, true), {2}, true);
        at::amax_out(b.row[f], b.abs[f].sum(2, true), {1}, true);
      }
    }
    auto& bound = t_.at("cols");
    bound.mul_(t_.at("rows")).clamp_min_(tiny_);
    at::div_out(bound, t_.at("cap_room"), bound)
        .clamp_(std::optional<at::Scalar>(), 1.0)
        .sqrt_();
    for (auto& b : buckets_)
      for (size_t f = 0; f < b.Ms.size(); ++f) b.Ms[f].mul_(b.col[f]);
  }

  std::vector<Bucket> buckets_;
  std::map<std::string, Tensors> lists_;
  Named t_;
  Tensors slots_[2];
  bool adam_base_, hyper_normalize_, cap_;
  double beta1_, beta2_, eps_, tiny_;
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<Pool>(m, "Pool")
      .def(pybind11::init<std::vector<Named>, std::vector<std::vector<std::string>>,
                          std::map<std::string, Tensors>, Named, std::string,
                          std::map<std::string, double>>())
      .def("hypergradients", &Pool::hypergradients)
      .def("update", &Pool::update)
      .def("step", &Pool::step);
}
