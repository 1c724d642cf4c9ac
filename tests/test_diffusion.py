"""The DDPM's parts: schedules, the closed-form forward process, the posterior and both samplers
against the papers' written-out formulas, DDIM(eta = 1) = DDPM(beta~), sampling a known Gaussian
with its exact eps, the loss, the diffusion model (its loss, buffers and rebuilding from a checkpoint
alone), the UNet, and the Frechet distance against its closed form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dlfp.engine.ema import EMA
from dlfp.eval.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_std,
    gaussian_frechet_distance,
)
from dlfp.models import build_model, rebuild_model
from dlfp.models.diffusion import Diffusion, NoiseSchedule, ddim_timesteps
from dlfp.models.unet import UNet

F64 = torch.float64


def linear_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A stand-in eps model: a fixed function of x and t, linear in x."""
    return 0.7 * x + 0.05 * torch.sin(t.to(x.dtype) * 0.3).view(-1, *([1] * (x.dim() - 1)))


# ---- schedules ----------------------------------------------------------------------------------


def test_linear_schedule_endpoints_and_scaling() -> None:
    s = NoiseSchedule("linear", 1000)
    assert s.betas.dtype == F64 and len(s.betas) == 1000
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    s200 = NoiseSchedule("linear", 200)  # scaled by 1000/200 = 5
    assert s200.betas[0].item() == pytest.approx(5e-4) and s200.betas[-1].item() == pytest.approx(0.1)
    torch.testing.assert_close(s200.betas[1] - s200.betas[0], torch.tensor((0.1 - 5e-4) / 199, dtype=F64))
    assert s.alpha_bars[0].item() == pytest.approx(1 - 1e-4)
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    with pytest.raises(ValueError, match="unknown noise schedule"):
        NoiseSchedule("quadratic", 100)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_every_schedule_length_the_schema_allows_samples_finite_images(kind: str) -> None:
    """T <= 20 scales the linear schedule's end 20/T to 1 or more (it raised before): every beta is
    now clipped at 0.999, as the cosine's, so both samplers run, clipped or not, for every T >= 2."""
    for steps in (2, 3, 10, 20, 21):
        s = NoiseSchedule(kind, steps)
        assert ((s.betas > 0) & (s.betas <= 0.999)).all() and (s.alpha_bars > 0).all(), steps
        for sampler, clip in (("ddpm", True), ("ddim", True), ("ddim", False)):
            x, _ = s.sample(linear_eps, (2, 1, 4, 4), sampler=sampler, eta=1.0, clip=clip,
                          generator=torch.Generator().manual_seed(0))
            assert torch.isfinite(x).all(), (steps, sampler, clip)
        loss, _ = s.eps_loss(linear_eps, torch.zeros(2, 1, 4, 4), torch.Generator().manual_seed(0))
        assert torch.isfinite(loss), steps
    linear = NoiseSchedule("linear", 21).betas
    assert linear[-1].item() == pytest.approx(20 / 21) and linear[-1] < 0.999  # unclipped above 20


@pytest.mark.parametrize("steps", [50, 1000])
def test_cosine_schedule_is_the_formula(steps: int) -> None:
    s = NoiseSchedule("cosine", steps)
    f = [math.cos(((t / steps) + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(steps + 1)]
    expected = torch.tensor([f[t + 1] / f[0] for t in range(steps - 1)], dtype=F64)
    torch.testing.assert_close(s.alpha_bars[:-1], expected, rtol=1e-12, atol=1e-15)
    assert s.betas.max().item() <= 0.999 and s.betas[-1].item() == pytest.approx(0.999)  # clipped
    assert (s.betas > 0).all()


# ---- forward process ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_closed_form_q_matches_iterated_one_step_kernels(kind: str) -> None:
    """q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t): propagate mean and variance exactly, and
    simulate the chain; q_sample's mean (noise 0) and std (x_0 0, noise 1) must match both."""
    s = NoiseSchedule(kind, 40)
    x0 = torch.tensor([0.9, -0.4, 0.0], dtype=F64)
    n = 20000
    chain = x0.expand(n, 3).clone()
    g = torch.Generator().manual_seed(0)
    mean, var = x0.clone(), torch.zeros(3, dtype=F64)
    for t in range(s.steps):
        mean, var = s.alphas[t].sqrt() * mean, s.alphas[t] * var + s.betas[t]
        chain = s.alphas[t].sqrt() * chain + s.betas[t].sqrt() * torch.randn(n, 3, generator=g, dtype=F64)
        closed_mean = s.q_sample(x0, t, torch.zeros(3, dtype=F64))
        closed_std = s.q_sample(torch.zeros(3, dtype=F64), t, torch.ones(3, dtype=F64))
        torch.testing.assert_close(closed_mean, mean, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(closed_std**2, var, rtol=1e-12, atol=1e-14)
        if t in (0, 9, 39):  # Monte Carlo: 5 standard errors
            sd = var.sqrt()
            assert ((chain.mean(0) - mean).abs() <= 5 * sd / math.sqrt(n)).all()
            assert ((chain.var(0) - var).abs() <= 5 * var * math.sqrt(2 / (n - 1))).all()


def test_q_sample_takes_one_timestep_per_example() -> None:
    s = NoiseSchedule("linear", 50)
    x0, noise = torch.randn(3, 1, 4, 4, dtype=F64), torch.randn(3, 1, 4, 4, dtype=F64)
    t = torch.tensor([0, 17, 49])
    x_t = s.q_sample(x0, t, noise)
    for i in range(3):
        ab = s.alpha_bars[t[i]]
        torch.testing.assert_close(x_t[i], ab.sqrt() * x0[i] + (1 - ab).sqrt() * noise[i])


# ---- posterior and single steps against the papers ----------------------------------------------


def test_posterior_mean_and_variance_are_ho_eq_7() -> None:
    s = NoiseSchedule("linear", 30)
    g = torch.Generator().manual_seed(1)
    x0, x_t = torch.randn(4, 1, 3, 3, generator=g, dtype=F64), torch.randn(4, 1, 3, 3, generator=g, dtype=F64)
    b, a, ab = s.betas, s.alphas, s.alpha_bars
    for t in [1, 12, 29]:
        mean, var = s.posterior_mean_variance(x0, x_t, t)
        expected = ((ab[t - 1].sqrt() * b[t] / (1 - ab[t])) * x0
                    + (a[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t])) * x_t)
        torch.testing.assert_close(mean, expected)
        torch.testing.assert_close(var, (1 - ab[t - 1]) / (1 - ab[t]) * b[t])
    mean, var = s.posterior_mean_variance(x0, x_t, 0)  # abar_{-1} = 1: x_0 itself, no variance
    torch.testing.assert_close(mean, x0)
    torch.testing.assert_close(var, torch.zeros((), dtype=F64))
    tt = torch.tensor([3, 7, 7, 20])  # one timestep per example
    mean, var = s.posterior_mean_variance(x0, x_t, tt)
    for i, t in enumerate(tt.tolist()):
        torch.testing.assert_close(mean[i], s.posterior_mean_variance(x0[i], x_t[i], t)[0])
        torch.testing.assert_close(var[i].squeeze(), s.posterior_mean_variance(x0[i], x_t[i], t)[1])


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_step_is_ho_eq_11(variance: str) -> None:
    s = NoiseSchedule("linear", 30)
    g = torch.Generator().manual_seed(2)
    x_t, eps, z = (torch.randn(2, 1, 4, 4, generator=g, dtype=F64) for _ in range(3))
    b, a, ab = s.betas, s.alphas, s.alpha_bars
    for t in [29, 10, 1]:
        sigma2 = b[t] if variance == "beta" else (1 - ab[t - 1]) / (1 - ab[t]) * b[t]
        expected = (x_t - b[t] / (1 - ab[t]).sqrt() * eps) / a[t].sqrt() + sigma2.sqrt() * z
        got = s.ddpm_step(eps, x_t, t, z, variance=variance, clip=False)
        torch.testing.assert_close(got, expected)
        # clipping: the posterior mean at the clamped x_0 prediction
        x0 = ((x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
        clipped = ((ab[t - 1].sqrt() * b[t] / (1 - ab[t])) * x0
                   + (a[t].sqrt() * (1 - ab[t - 1]) / (1 - ab[t])) * x_t + sigma2.sqrt() * z)
        torch.testing.assert_close(s.ddpm_step(eps, x_t, t, z, variance=variance), clipped)
    x0 = (x_t - (1 - ab[0]).sqrt() * eps) / ab[0].sqrt()  # t = 0: the predicted x_0, no noise
    torch.testing.assert_close(s.ddpm_step(eps, x_t, 0, z, variance=variance, clip=False), x0)


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_is_song_eq_12(clip: bool) -> None:
    s = NoiseSchedule("cosine", 40)
    g = torch.Generator().manual_seed(3)
    x_t, eps, z = (torch.randn(2, 1, 4, 4, generator=g, dtype=F64) for _ in range(3))
    ab = s.alpha_bars
    for t, t_prev, eta in [(39, 30, 0.0), (30, 12, 0.5), (12, 0, 1.0)]:
        a_t, a_p = ab[t], ab[t_prev]
        x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        e = eps
        if clip:
            x0 = x0.clamp(-1, 1)
            e = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sigma = eta * ((1 - a_p) / (1 - a_t)).sqrt() * (1 - a_t / a_p).sqrt()
        expected = a_p.sqrt() * x0 + (1 - a_p - sigma**2).sqrt() * e + sigma * z
        torch.testing.assert_close(s.ddim_step(eps, x_t, t, t_prev, z, eta=eta, clip=clip), expected)
    x0 = (x_t - (1 - ab[5]).sqrt() * eps) / ab[5].sqrt()  # the last step lands on x0_hat
    torch.testing.assert_close(s.ddim_step(eps, x_t, 5, -1, z, eta=1.0, clip=False), x0)


# ---- samplers -----------------------------------------------------------------------------------


def test_ddim_timesteps_are_evenly_spaced_from_t_minus_1_to_0() -> None:
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    assert ddim_timesteps(10, 4) == [9, 6, 3, 0]
    assert ddim_timesteps(10, 1) == [9]
    ts = ddim_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and len(set(ts)) == 50 and ts == sorted(ts, reverse=True)
    gaps = {a - b for a, b in zip(ts, ts[1:])}
    assert gaps <= {20, 21}
    for steps, sampled in [(7, 6), (1000, 999), (50, 33)]:
        assert len(set(ddim_timesteps(steps, sampled))) == sampled
    with pytest.raises(ValueError, match="between 1 and T"):
        ddim_timesteps(10, 11)


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_with_eta_1_and_all_steps_is_ddpm_with_beta_tilde(clip: bool) -> None:
    s = NoiseSchedule("linear", 25)
    shape = (3, 1, 5, 5)
    g = torch.Generator().manual_seed(4)
    noise = [torch.randn(shape, generator=g, dtype=F64) * (1.5 if clip else 1) for _ in range(26)]
    ddpm, traj = s.sample(linear_eps, shape, sampler="ddpm", variance="beta_tilde", noise=noise,
                        clip=clip, keep=6)
    ddim, _ = s.sample(linear_eps, shape, sampler="ddim", eta=1.0, noise=noise, clip=clip)
    torch.testing.assert_close(ddim, ddpm, rtol=1e-10, atol=1e-10)
    assert [t for t, _ in traj] == [24, 19, 14, 9, 4, -1]
    assert torch.equal(traj[0][1], noise[0]) and torch.equal(traj[-1][1], ddpm)
    plain, _ = s.sample(linear_eps, shape, sampler="ddpm", variance="beta", noise=noise, clip=clip)
    assert not torch.allclose(plain, ddpm)


def test_samplers_follow_the_seed_and_check_their_arguments() -> None:
    s = NoiseSchedule("cosine", 20)
    configs = [("ddpm", None, 0), ("ddpm", None, 0), ("ddpm", None, 1), ("ddim", 5, 0)]
    runs = [s.sample(linear_eps, (2, 1, 4, 4), sampler=kind, steps=steps, eta=0.3,
                   generator=torch.Generator().manual_seed(seed), keep=3) for kind, steps, seed in configs]
    assert torch.equal(runs[0][0], runs[1][0]) and not torch.equal(runs[0][0], runs[2][0])
    assert runs[0][0].abs().max() <= 1.0  # clipped x_0 at the last step
    assert [t for t, _ in runs[3][1]] == [19, 10, -1] and runs[3][0].shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="all T=20 steps"):
        s.sample(linear_eps, (1, 1, 2, 2), sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match="noise must hold 6"):
        s.sample(linear_eps, (1, 1, 2, 2), sampler="ddim", steps=5, noise=[torch.zeros(1, 1, 2, 2)] * 3)


GAUSSIAN_RUNS = [("ddpm", None, 0.0), ("ddim", 1000, 0.0), ("ddim", 250, 0.5)]


@pytest.mark.parametrize("sampler,steps,eta", GAUSSIAN_RUNS)
def test_sampling_a_gaussian_with_its_exact_eps_recovers_it(sampler: str, steps: int | None,
                                                            eta: float) -> None:
    """Data N(m, v): the optimal eps is E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) /
    (abar v + 1 - abar), so the samplers (clipping off) must give back N(m, v), up to the
    discretisation error of finitely many steps (DDIM loses ~2% of the variance at 1000 steps)."""
    m, v = 0.3, 0.25
    s = NoiseSchedule("linear", 1000)

    def exact_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = s.alpha_bars[t].view(-1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * v + 1 - ab)

    x, _ = s.sample(exact_eps, (20000, 1), sampler=sampler, steps=steps, eta=eta, clip=False,
                  generator=torch.Generator().manual_seed(5))
    x = x.double()
    assert x.mean().item() == pytest.approx(m, abs=0.015)  # 4 standard errors
    assert x.var().item() == pytest.approx(v, rel=0.04)


# ---- loss ---------------------------------------------------------------------------------------


def test_eps_loss_is_the_mse_and_an_oracle_scores_zero() -> None:
    s = NoiseSchedule("linear", 50)
    x0 = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(6)) * 2 - 1

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = s.alpha_bars.float()[t].view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    loss, t = s.eps_loss(oracle, x0, torch.Generator().manual_seed(7))
    assert loss.item() < 1e-10 and t.shape == (6,) and t.dtype == torch.long

    g = torch.Generator().manual_seed(8)
    loss, t = s.eps_loss(linear_eps, x0, torch.Generator().manual_seed(8))
    t_again = torch.randint(0, 50, (6,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    assert torch.equal(t, t_again)
    x_t = s.alpha_bars.float()[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - s.alpha_bars.float()[t]).sqrt().view(
        -1, 1, 1, 1) * noise
    torch.testing.assert_close(loss, ((linear_eps(x_t, t) - noise) ** 2).mean())
    per_example, _ = s.eps_loss(linear_eps, x0, t=t, noise=noise, reduction="none")
    torch.testing.assert_close(per_example, ((linear_eps(x_t, t) - noise) ** 2).flatten(1).mean(1))


def test_eps_loss_draws_t_uniformly() -> None:
    s = NoiseSchedule("linear", 25)
    _, t = s.eps_loss(lambda x, t: torch.zeros_like(x), torch.zeros(50000, 1),
                      torch.Generator().manual_seed(9))
    counts = torch.bincount(t, minlength=25).double()
    assert t.min() == 0 and t.max() == 24
    chi2 = ((counts - 2000) ** 2 / 2000).sum().item()
    assert chi2 < 52.6  # the 0.999 quantile of chi^2 with 24 degrees of freedom


# ---- the model: UNet and process in one module -------------------------------------------------

TINY = {"_target_": "dlfp.models.diffusion.Diffusion", "timesteps": 10, "noise": "cosine", "image_size": 16,
        "in_channels": 2, "widths": [8, 8], "groups": 4}


def test_the_loss_method_is_the_eps_mse_drawn_as_before() -> None:
    """model.loss(batch) draws t, then the noise, from the global RNG (which checkpoints restore),
    as the task's diffusion_loss did: the same seed gives the same loss, bit for bit, as the
    loss written out."""
    torch.manual_seed(0)
    model = build_model(TINY)
    x0 = torch.rand(5, 2, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(2)
    loss = model.loss({"x": x0})
    torch.manual_seed(2)
    t = torch.randint(0, 10, (5,))
    noise = torch.randn(x0.shape)
    abar = NoiseSchedule("cosine", 10).alpha_bars[t].view(-1, 1, 1, 1)
    x_t = abar.sqrt().float() * x0 + (1 - abar).sqrt().float() * noise
    assert torch.equal(loss, ((model.net(x_t, t) - noise) ** 2).mean())


def test_the_schedule_is_buffers_that_nothing_trains_averages_or_saves() -> None:
    model = build_model(TINY)
    assert not any(name.startswith("schedule.") for name, _ in model.named_parameters())
    assert not any(key.startswith("schedule.") for key in model.state_dict())  # the config rebuilds it
    assert {name for name, _ in model.named_buffers()} == {
        "schedule.betas", "schedule.alphas", "schedule.alpha_bars", "schedule.alpha_bars_prev"}
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()
    torch.testing.assert_close(ema.model.schedule.alpha_bars, NoiseSchedule("cosine", 10).alpha_bars,
                               rtol=0, atol=0)
    assert model.schedule.betas.dtype == F64


def test_a_checkpoint_alone_rebuilds_the_sampler_at_its_trained_size() -> None:
    """The model config (no run config) holds T, the schedule, the image size and channels."""
    torch.manual_seed(0)
    model = build_model(TINY)
    checkpoint = {"model_config": json.dumps(model.init_config), "update": {"model": model.state_dict()}}
    rebuilt = rebuild_model(checkpoint)
    assert isinstance(rebuilt, Diffusion) and rebuilt.schedule.steps == 10
    assert torch.equal(rebuilt.schedule.betas, NoiseSchedule("cosine", 10).betas)
    images, trajectory = rebuilt.sample(3, sampler="ddim", steps=4, keep=2,
                                        generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 2, 16, 16) and [t for t, _ in trajectory] == [9, -1]
    again, _ = model.eval().sample(3, sampler="ddim", steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)


# ---- UNet ---------------------------------------------------------------------------------------


def unet(**kw) -> UNet:
    torch.manual_seed(0)
    return UNet(**kw)


def test_unet_default_is_small_and_keeps_the_shape() -> None:
    model = unet()
    params = sum(p.numel() for p in model.parameters())
    assert params == 773_793 and params <= 1_000_000
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 10, 999]))
        other = model(x, torch.tensor([500, 10, 999]))
    assert out.shape == x.shape
    assert not torch.allclose(out[0], other[0], atol=1e-4)  # the time embedding reaches the output
    torch.testing.assert_close(out[1:], other[1:])


def test_every_unet_parameter_gets_a_gradient() -> None:
    model = unet(attention=True, blocks=2, dropout=0.1)
    x = torch.randn(2, 1, 28, 28)
    model(x, torch.tensor([3, 700])).pow(2).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_unet_options_and_rebuild_from_json() -> None:
    kwargs = json.loads(json.dumps({"in_channels": 3, "widths": [16, 32], "blocks": 2, "attention": True,
                                    "groups": 4, "dropout": 0.0}))
    model = unet(**kwargs)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])).shape == (2, 3, 8, 8)
    with_attn = sum(p.numel() for p in unet(attention=True).parameters())
    assert with_attn == 824_097  # three attention layers at 7x7 (down, middle, up)
    with pytest.raises(ValueError, match="divisible by 4"):
        unet()(torch.randn(1, 1, 30, 30), torch.tensor([0]))
    with pytest.raises(ValueError, match="divisible by groups"):
        UNet(widths=[30, 60])


# ---- Frechet distance ---------------------------------------------------------------------------


def random_spd(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def closed_form(mu1: np.ndarray, c1: np.ndarray, mu2: np.ndarray, c2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2}); Tr (C1 C2)^{1/2} = sum of the square roots of
    the (real, non-negative) eigenvalues of C1 C2."""
    root_trace = np.sqrt(np.linalg.eigvals(c1 @ c2).real.clip(min=0)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * root_trace)


@pytest.mark.parametrize("method", ["sqrtm", "eigh", "auto"])
def test_frechet_distance_of_gaussians_is_the_closed_form(method: str) -> None:
    if method == "sqrtm":
        pytest.importorskip("scipy")
    rng = np.random.default_rng(10)
    d = 5
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = random_spd(d, rng), random_spd(d, rng)
    exact = closed_form(mu1, c1, mu2, c2)
    assert gaussian_frechet_distance(mu1, c1, mu2, c2, method) == pytest.approx(exact, rel=1e-9)
    diag = gaussian_frechet_distance(np.zeros(2), np.diag([4.0, 1.0]), np.ones(2), np.diag([1.0, 9.0]),
                                     method)
    assert diag == pytest.approx(2 + (2 - 1) ** 2 + (1 - 3) ** 2)  # commuting: sum (sqrt a - sqrt b)^2
    a = rng.multivariate_normal(mu1, c1, size=40000)
    b = rng.multivariate_normal(mu2, c2, size=40000)
    assert frechet_distance(a, b, method) == pytest.approx(exact, rel=0.03)
    assert frechet_distance(a, b, method) == pytest.approx(frechet_distance(b, a, method), rel=1e-9)
    assert frechet_distance(a, a, method) == pytest.approx(0.0, abs=1e-9)


def test_frechet_statistics_accept_tensors_and_the_error_shrinks_with_n() -> None:
    rng = np.random.default_rng(11)
    real = rng.normal(size=(4000, 3))
    mu, cov = feature_statistics(torch.from_numpy(real).float())
    np.testing.assert_allclose(mu, real.mean(0), atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(real, rowvar=False), atol=1e-6)
    small, large = rng.normal(0.2, 1.0, size=(200, 3)), rng.normal(0.2, 1.0, size=(3200, 3))
    err_small = frechet_distance_std(real, small, resamples=10, seed=0)
    assert err_small == frechet_distance_std(real, small, resamples=10, seed=0)  # seeded
    err_large = frechet_distance_std(real, torch.from_numpy(large), resamples=10, seed=0)
    assert 0 < err_large < err_small / 2  # ~ 1/sqrt(N): 16x the samples, about 1/4 the error
    with pytest.raises(ValueError, match="N >= 2, D"):
        frechet_distance(np.zeros(5), np.zeros(5))


def test_frechet_distance_with_fewer_samples_than_dimensions() -> None:
    """Singular covariances: sqrtm's result is complex beyond round-off there; the answer stays real,
    symmetric, and equal to the eigendecomposition's."""
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(10, 20)), rng.normal(size=(12, 20)) + 0.1
    d = frechet_distance(a, b)
    assert math.isfinite(d) and d == pytest.approx(frechet_distance(a, b, "eigh"), rel=1e-6)
    assert d == pytest.approx(frechet_distance(b, a), rel=1e-6)
