"""rl_games' PPO loss for its Gaussian policy as one Warp kernel, forward and gradient together.

Why: written as torch operations, the loss terms (the action's negative log-likelihood, the clipped surrogate, the
clipped value loss, the entropy, the bound loss, their means) and their backward pass are about half of a minibatch
step's 213 kernels (bench/kernel_count.py), and each small kernel costs the GPU about 2 us even inside a CUDA graph.
Here one thread per sample computes its terms and the loss's derivatives with respect to the network's outputs (mean,
log standard deviation, value); the backward pass only scales those. The math is rl_games 1.6.5's
(a2c_continuous.calc_losses, common_losses.actor_loss and critic_loss, ModelA2CContinuousLogStd's neglogp and entropy,
torch_ext.policy_kl), and where it takes a maximum of two equal terms the gradient is shared between them, as torch's
is; tests/test_update.py checks a minibatch step against rl_games' own.
"""

from __future__ import annotations

import math

import torch
import warp as wp

from harness import graphs

SOFT_BOUND = wp.constant(1.1)  # rl_games' bound_loss: the action means are pushed back inside +-1.1
LOG_2PI = wp.constant(math.log(2.0 * math.pi))
TERMS = 5  # per sample: actor loss, critic loss, entropy, bound loss, KL divergence to the old policy


@wp.func
def _max_grad(a: float, b: float) -> float:
    """The share of d max(a, b) that goes to a: 1, 0, or 1/2 where they are equal (torch.maximum's rule)."""
    if a > b:
        return 1.0
    if a < b:
        return 0.0
    return 0.5


@wp.func
def _within(x: float, low: float, high: float) -> float:
    """1 where torch.clamp(x, low, high) passes a gradient (low <= x <= high), else 0."""
    if x >= low and x <= high:
        return 1.0
    return 0.0


@wp.kernel
def ppo_terms(  # noqa: PLR0917 (a Warp kernel takes its inputs by position)
    mu: wp.array2d(dtype=float),
    logstd: wp.array2d(dtype=float),
    value: wp.array2d(dtype=float),
    actions: wp.array2d(dtype=float),
    old_neglogp: wp.array(dtype=float),
    advantage: wp.array(dtype=float),
    old_value: wp.array2d(dtype=float),
    returns: wp.array2d(dtype=float),
    old_mu: wp.array2d(dtype=float),
    old_sigma: wp.array2d(dtype=float),
    coefs: wp.vec4,  # e_clip, critic_coef, entropy_coef, bounds_loss_coef
    clip_value: int,
    terms: wp.array2d(dtype=float),
    d_mu: wp.array2d(dtype=float),
    d_logstd: wp.array2d(dtype=float),
    d_value: wp.array2d(dtype=float),
):
    i = wp.tid()
    e_clip = coefs[0]
    critic_coef = coefs[1]
    entropy_coef = coefs[2]
    bounds_coef = coefs[3]
    num_actions = mu.shape[1]
    # the action's negative log-likelihood under the new policy, and the ratio to the old one's
    neglogp = wp.float32(0.0)
    for a in range(num_actions):
        z = (actions[i, a] - mu[i, a]) / wp.exp(logstd[i, a])
        neglogp += 0.5 * z * z + logstd[i, a] + 0.5 * LOG_2PI
    ratio = wp.exp(old_neglogp[i] - neglogp)
    clipped = wp.clamp(ratio, 1.0 - e_clip, 1.0 + e_clip)
    surrogate = -advantage[i] * ratio
    surrogate_clipped = -advantage[i] * clipped
    actor = wp.max(surrogate, surrogate_clipped)
    # d actor / d ratio, through whichever surrogate is the larger (clamp passes a gradient inside its range only)
    share = _max_grad(surrogate, surrogate_clipped)
    inside = _within(ratio, 1.0 - e_clip, 1.0 + e_clip)
    d_ratio = -advantage[i] * (share + (1.0 - share) * inside)
    d_neglogp = d_ratio * (-ratio)  # d ratio / d neglogp = -ratio
    # the value loss, clipped around the old value as rl_games does with clip_value
    v = value[i, 0]
    target = returns[i, 0]
    critic = (v - target) * (v - target)
    d_v = 2.0 * (v - target)
    if clip_value != 0:
        delta = v - old_value[i, 0]
        v_clipped = old_value[i, 0] + wp.clamp(delta, -e_clip, e_clip)
        critic_clipped = (v_clipped - target) * (v_clipped - target)
        share_v = _max_grad(critic, critic_clipped)
        inside_v = _within(delta, -e_clip, e_clip)
        d_v = share_v * d_v + (1.0 - share_v) * 2.0 * (v_clipped - target) * inside_v
        critic = wp.max(critic, critic_clipped)
    d_value[i, 0] = 0.5 * critic_coef * d_v
    entropy = wp.float32(0.0)
    bound = wp.float32(0.0)
    kl = wp.float32(0.0)
    for a in range(num_actions):
        sigma = wp.exp(logstd[i, a])
        z = (actions[i, a] - mu[i, a]) / sigma
        entropy += 0.5 + 0.5 * LOG_2PI + logstd[i, a]
        high = wp.max(mu[i, a] - SOFT_BOUND, 0.0)
        low = wp.min(mu[i, a] + SOFT_BOUND, 0.0)
        bound += high * high + low * low
        gap = old_mu[i, a] - mu[i, a]
        old_var = old_sigma[i, a] * old_sigma[i, a]
        kl += wp.log(old_sigma[i, a] / sigma + 1.0e-5) + (sigma * sigma + gap * gap) / (2.0 * (old_var + 1.0e-5)) - 0.5
        # d neglogp / d mu = -z / sigma; d neglogp / d logstd = 1 - z^2; d entropy / d logstd = 1
        d_mu[i, a] = d_neglogp * (-z / sigma) + bounds_coef * 2.0 * (high + low)
        d_logstd[i, a] = d_neglogp * (1.0 - z * z) - entropy_coef
    terms[i, 0] = actor
    terms[i, 1] = critic
    terms[i, 2] = entropy
    terms[i, 3] = bound
    terms[i, 4] = kl


class FusedPPOLoss(torch.autograd.Function):
    """loss = mean(actor) + 0.5 critic_coef mean(critic) - entropy_coef mean(entropy) + bounds_coef mean(bound), as
    rl_games combines them; also returns the five terms' means (without gradient) for its logs and schedule."""

    @staticmethod
    def forward(ctx, mu, logstd, value, batch: dict, coefs: tuple, clip_value: bool):  # noqa: PLR0917
        dtypes = [t.dtype for t in (mu, logstd, value)]  # (under autocast the heads' outputs are bfloat16)
        mu, logstd, value = (t.detach().float().contiguous() for t in (mu, logstd, value))
        samples = mu.shape[0]
        terms = mu.new_empty(samples, TERMS)
        d_mu, d_logstd, d_value = torch.empty_like(mu), torch.empty_like(logstd), torch.empty_like(value)
        inputs = [mu, logstd, value, *(batch[key].float().contiguous() for key in BATCH_KEYS)]
        outputs = [terms, d_mu, d_logstd, d_value]
        graphs.warp_launch(ppo_terms, samples, [*inputs, wp.vec4(*coefs), int(clip_value), *outputs])
        means = terms.mean(0)
        e_clip, critic_coef, entropy_coef, bounds_coef = coefs
        loss = means[0] + 0.5 * critic_coef * means[1] - entropy_coef * means[2] + bounds_coef * means[3]
        ctx.save_for_backward(d_mu, d_logstd, d_value)
        ctx.dtypes, ctx.samples = dtypes, samples
        ctx.mark_non_differentiable(means)
        return loss, means

    @staticmethod
    def backward(ctx, grad_loss, grad_means):
        d_mu, d_logstd, d_value = ctx.saved_tensors
        scale = grad_loss / ctx.samples  # the loss is a mean over the samples
        grads = [(d * scale).to(dtype) for d, dtype in zip((d_mu, d_logstd, d_value), ctx.dtypes, strict=True)]
        return *grads, None, None, None


# The minibatch's tensors the kernel reads, in its order (rl_games' dataset keys).
BATCH_KEYS = ("actions", "old_logp_actions", "advantages", "old_values", "returns", "mu", "sigma")
