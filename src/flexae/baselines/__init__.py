"""Baselines of the paper's Table 1 on the same encoder/decoder (Table 7 for images, Table 6 for
synthetic data), trained through the same loop, checkpoints and CLI as FlexAE.

| name       | paper                               | module          |
|------------|-------------------------------------|-----------------|
| `wae-mmd`  | Tolstikhin et al., ICLR 2018        | deterministic   |
| `ae-gmm`   | Ghosh et al., ICLR 2020 (plain AE)  | deterministic   |
| `rae-gmm`  | Ghosh et al., ICLR 2020 (RAE-L2)    | deterministic   |
| `2s-vae`   | Dai & Wipf, ICLR 2019               | variational     |
| `vamp-vae` | Tomczak & Welling, AISTATS 2018     | variational     |
| `iaf-vae`  | Kingma et al., NeurIPS 2016         | variational     |
| `vq-vae`   | van den Oord et al., NeurIPS 2017   | vqvae           |
| `mask-aae` | Mondal et al., UAI 2020             | maskaae         |

`ae-gmm`, `rae-gmm`, `2s-vae` and `vq-vae` generate through an *ex-post* sampler (a GMM, a
second-stage VAE, an autoregressive prior over code indices) fitted after training as a separate
step (`flexae fit-sampler RUN_DIR`, also run at the end of `flexae train`) and saved to
`RUN_DIR/sampler.pt` as plain tensors; see `flexae.baselines.samplers`.

This module only names the baselines, so `flexae.models` can import it without a cycle; the
models and trainers are looked up in `flexae.baselines.registry`.
"""

BASELINE_NAMES = ("wae-mmd", "ae-gmm", "rae-gmm", "2s-vae", "vamp-vae", "iaf-vae", "vq-vae", "mask-aae")
