"""Variational autoencoder for binarised images: Gaussian encoder, Bernoulli decoder, ELBO and IWAE.

Every log-likelihood here is per image in nats: summed over pixels (and latent dimensions), natural
log. The decoder returns logits and the Bernoulli log-likelihood is computed from them (-BCE with
logits), which stays finite where sigmoid(logit) rounds to exactly 0 or 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


class VAE(nn.Module):
    """Encoder D -> hidden (tanh) -> 2L (mu, log sigma^2); decoder L -> hidden (tanh) -> D logits.

    ``loss(batch)`` is the negative ELBO with ``mc_samples`` draws of z per image: the VAE task
    passes ``vae.mc_samples``, so the checkpoint's constructor arguments rebuild the loss the model
    trained on. The defaults, model=vae's and one draw (the textbook estimator), are kept for models
    built without config: tests, and checkpoints written before the model owned its loss.
    """

    def __init__(self, input_dim: int = 196, hidden: int = 128, latent_dim: int = 8,
                 mc_samples: int = 1) -> None:
        super().__init__()
        if mc_samples < 1:
            raise ValueError(f"mc_samples must be positive, got {mc_samples}")
        self.input_dim, self.latent_dim, self.mc_samples = input_dim, latent_dim, mc_samples
        self.encoder = nn.Sequential(
            nn.Linear(input_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, input_dim))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mu, diag(exp(logvar))) for each row of x."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means p(x_i = 1 | z)."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction: the Bernoulli means decoded from the posterior mean."""
        return self.decode(self.encode(x)[0])

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss, -ELBO per image of ``batch["x"]``, and its terms (``negative_elbo``)."""
        return negative_elbo(self, batch["x"], self.mc_samples)


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """float32 for autocast's half-precision outputs; float32/float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form, summed over the last dimension."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over pixels; logits may carry leading sample dimensions."""
    logits = _full_precision(logits)
    bce = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype).expand_as(logits), reduction="none")
    return -bce.sum(-1)


def elbo_terms(
    model: VAE,
    x: torch.Tensor,
    samples: int,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: E_q[log p(x|z)] by ``samples`` reparameterised draws, and the closed-form KL.

    ELBO = recon - kl. ``noise`` (samples, N, L) fixes the draws (tests); otherwise they come from
    ``generator`` or, in training, the global torch RNG that checkpoints save and restore.
    """
    mu, logvar = model.encode(x)
    mu, logvar = _full_precision(mu), _full_precision(logvar)
    if noise is None:
        noise = torch.randn((samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + (0.5 * logvar).exp() * noise
    recon = bernoulli_log_likelihood(model.decode_logits(z), x).mean(0)
    return recon, gaussian_kl(mu, logvar)


def negative_elbo(
    model: VAE, x: torch.Tensor, samples: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss, -ELBO averaged over the batch (nats per image), and its terms for the log."""
    recon, kl = elbo_terms(model, x, samples)
    elbo = (recon - kl).mean()
    return -elbo, {"recon_ll": recon.mean(), "kl": kl.mean(), "elbo": elbo}


def iwae_bound(
    model: VAE,
    x: torch.Tensor,
    k: int,
    *,
    chunk: int = 100,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per image: log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x): a lower bound on log p(x).

    k = 1 is an unbiased one-sample ELBO estimate; the bound tightens as k grows (Burda et al., 2016).
    The k samples are drawn ``chunk`` at a time and combined with logsumexp, so memory stays
    bounded and nothing underflows. ``noise`` (k, N, L) fixes the draws (tests).
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be positive, got k={k}, chunk={chunk}")
    mu, logvar = model.encode(x)
    mu, logvar = _full_precision(mu), _full_precision(logvar)
    std = (0.5 * logvar).exp()
    parts = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        eps = (noise[start : start + n] if noise is not None
               else torch.randn((n, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype))
        z = mu + std * eps
        log_px_z = bernoulli_log_likelihood(model.decode_logits(z), x)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
        parts.append(torch.logsumexp(log_px_z + log_pz - log_qz, dim=0))
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)
