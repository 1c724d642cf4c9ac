"""Denoising diffusion (Ho et al. 2020) as a model: ``Diffusion`` is the noise predictor (a UNet)
together with the process it is trained for: the noise schedule, the image size and channels, the
eps-prediction loss and the samplers, ancestral DDPM and DDIM (Song et al. 2021). Its constructor's
arguments (the checkpoint's ``model_config``) rebuild all of it, so a checkpoint alone samples at
the size it was trained on.

Timesteps are 0-based: t = 0 ... T-1, abar_t = prod_{i <= t} (1 - beta_i), so abar_0 = 1 - beta_0 and
x_t = q_sample(x_0, t) is Ho et al.'s x_{t+1}. "abar_{-1}" = 1 is the clean data; a reverse step at
t = 0 returns the (clipped) predicted x_0. The schedule is float64 buffers that move with the model
and are not in its state dict (the constructor's arguments rebuild them; nothing trains or averages
them); the coefficients are cast to the data's dtype where they are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfp.models.unet import UNet

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t of shape (B,)) -> eps
MAX_BETA = 0.999  # Nichol & Dhariwal's bound: beta = 1 would make abar_t = 0 and x_0 unrecoverable


def schedule_betas(kind: str, steps: int) -> torch.Tensor:
    """``linear``: beta from 1e-4 to 0.02 at T = 1000 (Ho et al.), both ends scaled by 1000/T for
    other T so that abar_{T-1} stays near zero (Nichol & Dhariwal's get_named_beta_schedule).
    ``cosine``: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T) + s)/(1 + s) pi/2), s = 0.008 (Nichol &
    Dhariwal 2021): beta_t = 1 - f(t+1)/f(t). Both are clipped at ``MAX_BETA``: the cosine against
    its singularity at t = T, the linear one for T <= 20, where the scaled end 20/T reaches 1; so
    every T >= 1 gives a schedule with every beta in (0, 1)."""
    if steps < 1:
        raise ValueError(f"a noise schedule needs at least one step, got {steps}")
    if kind == "linear":
        scale = 1000.0 / steps
        betas = torch.linspace(1e-4 * scale, 0.02 * scale, steps, dtype=torch.float64)
    elif kind == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = 1 - f[1:] / f[:-1]
    else:
        raise ValueError(f"unknown noise schedule {kind!r}: use 'linear' or 'cosine'")
    return betas.clamp(max=MAX_BETA)


def _at(values: torch.Tensor, t: int | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] in ``like``'s dtype and device, broadcastable against it: a scalar for an int t,
    (B, 1, 1, ...) for a (B,) tensor of timesteps."""
    v = values.to(like.dtype).to(like.device)
    if not isinstance(t, torch.Tensor):
        return v[int(t)]
    return v[t.to(like.device)].view(-1, *([1] * (like.dim() - 1)))


def ddim_timesteps(steps: int, sampled: int) -> list[int]:
    """``sampled`` timesteps evenly spaced over [0, T-1], both ends included: t_i = round(i (T-1) /
    (S-1)), in decreasing order (S = 1: just T-1). Distinct because the spacing is at least 1."""
    if not 1 <= sampled <= steps:
        raise ValueError(f"DDIM needs between 1 and T={steps} steps, got {sampled}")
    if sampled == 1:
        return [steps - 1]
    return [(2 * i * (steps - 1) + sampled - 1) // (2 * (sampled - 1)) for i in reversed(range(sampled))]


class NoiseSchedule(nn.Module):
    """One beta schedule (``schedule_betas(kind, steps)``) and what follows from it: the forward
    process, the posterior, one reverse step of each sampler, sampling and the loss, for any eps
    model (the tests use written-out ones)."""

    betas: torch.Tensor  # (T,) float64
    alphas: torch.Tensor  # 1 - betas
    alpha_bars: torch.Tensor  # cumulative products of alphas
    alpha_bars_prev: torch.Tensor  # abar_{t-1} for t = 0 ... T-1, with abar_{-1} = 1

    def __init__(self, kind: str, steps: int) -> None:
        super().__init__()
        betas = schedule_betas(kind, steps)
        alpha_bars = torch.cumprod(1 - betas, 0)
        tensors = {"betas": betas, "alphas": 1 - betas, "alpha_bars": alpha_bars,
                   "alpha_bars_prev": torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])}
        for name, values in tensors.items():
            self.register_buffer(name, values, persistent=False)

    @property
    def steps(self) -> int:
        return len(self.betas)

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) in one step (Ho et al. eq. 4)."""
        return _at(self.alpha_bars.sqrt(), t, x0) * x0 + _at((1 - self.alpha_bars).sqrt(), t, x0) * noise

    def posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor,
                                t: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_{t-1} | x_t, x_0) = N(mean, variance) (Ho et al. eq. 6-7):
        mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
        variance = beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (0 at t = 0, where the mean is x_0)."""
        prev, abar = self.alpha_bars_prev, self.alpha_bars
        c0 = prev.sqrt() * self.betas / (1 - abar)
        ct = self.alphas.sqrt() * (1 - prev) / (1 - abar)
        variance = (1 - prev) / (1 - abar) * self.betas
        return _at(c0, t, x0) * x0 + _at(ct, t, x0) * x_t, _at(variance, t, x0)

    def predict_x0(self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), q_sample solved for x_0."""
        return (x_t - _at((1 - self.alpha_bars).sqrt(), t, x_t) * eps) / _at(self.alpha_bars.sqrt(), t, x_t)

    def ddpm_step(self, model_eps: torch.Tensor, x_t: torch.Tensor, t: int, noise: torch.Tensor | None,
                  variance: str = "beta", clip: bool = True) -> torch.Tensor:
        """x_{t-1} = mean + sigma_t z. Unclipped, mean = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
        (Ho et al. eq. 11), which is the posterior mean at the predicted x_0; ``clip`` clamps that x_0
        to the data range [-1, 1] first (Ho et al.'s code), because at large t the prediction divides by
        sqrt(abar_t) ~ 0.01 and small eps errors would push samples far outside the data range.
        sigma_t^2 = beta_t (``"beta"``) or beta~_t (``"beta_tilde"``); no noise at t = 0 or for noise=None."""
        if variance not in ("beta", "beta_tilde"):
            raise ValueError(f"unknown DDPM variance {variance!r}: use 'beta' or 'beta_tilde'")
        x0 = self.predict_x0(x_t, t, model_eps)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        mean, beta_tilde = self.posterior_mean_variance(x0, x_t, t)
        if t == 0 or noise is None:
            return mean
        var = _at(self.betas, t, x_t) if variance == "beta" else beta_tilde
        return mean + var.sqrt() * noise

    def ddim_step(self, model_eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int,
                  noise: torch.Tensor | None, eta: float = 0.0, clip: bool = True) -> torch.Tensor:
        """Song et al. eq. 12: x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps
        + sigma z, sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev);
        t_prev = -1 means abar_prev = 1 (the last step lands on x0_hat). With ``clip`` x0_hat is clamped
        to [-1, 1] and eps re-derived from it, so eta = 1 over all T steps is exactly DDPM with beta~."""
        x0 = self.predict_x0(x_t, t, model_eps)
        eps = model_eps
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x_t - _at(self.alpha_bars.sqrt(), t, x_t) * x0) / _at((1 - self.alpha_bars).sqrt(), t, x_t)
        abar = self.alpha_bars[t]
        abar_prev = self.alpha_bars[t_prev] if t_prev >= 0 else torch.ones_like(abar)
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        direction = (1 - abar_prev - sigma**2).clamp(min=0).sqrt()
        x = abar_prev.sqrt().to(x_t.dtype) * x0 + direction.to(x_t.dtype) * eps
        if noise is not None and eta > 0:
            x = x + sigma.to(x_t.dtype) * noise
        return x

    @torch.no_grad()
    def sample(self, model: EpsModel, shape: Sequence[int], *, sampler: str = "ddpm",
               steps: int | None = None, eta: float = 0.0, variance: str = "beta",
               generator: torch.Generator | None = None, clip: bool = True, keep: int = 0,
               noise: Sequence[torch.Tensor] | torch.Tensor | None = None,
               on_step: Callable[[], None] | None = None,
               ) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """Samples of ``shape`` from pure noise, on the schedule's device, and a trajectory of ``keep``
        snapshots (t, x_t) evenly spaced over the S + 1 states, from the starting noise (t = T-1) to
        the sample (t = -1).

        ``ddpm``: ancestral sampling through all T steps. ``ddim``: ``steps`` = S <= T timesteps from
        ``ddim_timesteps`` (default T), stochasticity ``eta``. The noise is drawn on the generator's
        device and moved to the schedule's, so a seed gives the same samples on every device;
        ``noise`` (S + 1 tensors of ``shape``: x_{T-1}, then the z of each step) replaces the draws.
        Call it with the model in eval mode.
        """
        T, device = self.steps, self.betas.device
        if sampler == "ddpm":
            if steps not in (None, T):
                raise ValueError(f"ancestral DDPM runs all T={T} steps, got steps={steps}; "
                                 "use sampler='ddim'")
            ts = list(range(T - 1, -1, -1))
        elif sampler == "ddim":
            ts = ddim_timesteps(T, T if steps is None else steps)
        else:
            raise ValueError(f"unknown sampler {sampler!r}: use 'ddpm' or 'ddim'")
        if noise is not None and len(noise) != len(ts) + 1:
            raise ValueError(f"noise must hold {len(ts) + 1} tensors (the starting noise and one per step), "
                             f"got {len(noise)}")

        def draw(i: int) -> torch.Tensor:
            if noise is not None:
                return noise[i].to(device)
            where = generator.device if generator is not None else device
            return torch.randn(tuple(shape), generator=generator, device=where).to(device)

        x = draw(0)
        if keep > 1:  # indices of the S + 1 states: 0 is the starting noise, S the sample
            marks = {round(j * len(ts) / (keep - 1)) for j in range(keep)}
        else:
            marks = {len(ts)} if keep == 1 else set()
        trajectory = [(T - 1, x)] if 0 in marks else []
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            eps = model(x, torch.full((x.shape[0],), t, device=device, dtype=torch.long)).to(x.dtype)
            if sampler == "ddpm":
                z = draw(i + 1) if t > 0 else None
                x = self.ddpm_step(eps, x, t, z, variance=variance, clip=clip)
            else:
                z = draw(i + 1) if eta > 0 and t_prev >= 0 else None
                x = self.ddim_step(eps, x, t, t_prev, z, eta=eta, clip=clip)
            if i + 1 in marks:
                trajectory.append((t_prev, x))
            if on_step is not None:  # a progress bar's tick
                on_step()
        return x, trajectory

    def eps_loss(self, model: EpsModel, x0: torch.Tensor, generator: torch.Generator | None = None, *,
                 t: torch.Tensor | None = None, noise: torch.Tensor | None = None, reduction: str = "mean",
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ho et al.'s simple loss ||eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)||^2 (mean
        over pixels; over the batch too for ``reduction="mean"``, per example for ``"none"``), with t
        uniform on {0, ..., T-1} and eps ~ N(0, I); returns it and the t of each example. Draws come
        from ``generator`` (on its device) or, in training, the global RNG that checkpoints restore,
        t first, then the noise; ``t`` and ``noise`` fix them (evaluation, tests)."""
        where = generator.device if generator is not None else x0.device
        if t is None:
            t = torch.randint(0, self.steps, (x0.shape[0],), generator=generator, device=where).to(x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=where, dtype=x0.dtype).to(x0.device)
        pred = model(self.q_sample(x0, t, noise), t).float()
        per_pixel = F.mse_loss(pred, noise.float(), reduction="none")
        if reduction == "none":
            return per_pixel.flatten(1).mean(1), t
        if reduction != "mean":
            raise ValueError(f"unknown reduction {reduction!r}: use 'mean' or 'none'")
        return per_pixel.mean(), t


class Diffusion(nn.Module):
    """eps_theta(x_t, t) (the UNet, ``net``) with its noise schedule (``schedule``, T = ``timesteps``
    steps of kind ``noise``) and the images it learns: ``in_channels`` x ``image_size`` x
    ``image_size``. ``unet``: the UNet's other arguments (widths, blocks, attention, groups,
    dropout). Called as ``model(x_t, t)`` it predicts the noise; ``loss`` trains it, ``sample``
    draws images of its own shape."""

    def __init__(self, *, timesteps: int, noise: str, image_size: int, in_channels: int, **unet: Any) -> None:
        super().__init__()
        self.net = UNet(in_channels, **unet)
        self.schedule = NoiseSchedule(noise, timesteps)
        self.image_shape = (in_channels, image_size, image_size)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The eps-prediction MSE of the images ``batch["x"]`` (in [-1, 1]) at random t and noise."""
        return self.schedule.eps_loss(self, batch["x"])[0]

    def sample(self, n: int, **options: Any) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        """``n`` images of the trained shape and their trajectory: ``NoiseSchedule.sample``'s options
        (sampler, steps, eta, variance, generator, clip, keep, noise, on_step)."""
        return self.schedule.sample(self, (n, *self.image_shape), **options)
