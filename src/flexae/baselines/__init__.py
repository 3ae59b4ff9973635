"""Baselines of the paper's Table 1 on the same encoder/decoder (Table 7 for images, Table 6 for
synthetic data), trained through the same loop, checkpoints and CLI as FlexAE.

| name       | paper                               | module          |
|------------|-------------------------------------|-----------------|
| `wae-gan`  | Tolstikhin et al., ICLR 2018        | wae_gan         |
| `wae-mmd`  | Tolstikhin et al., ICLR 2018        | deterministic   |
| `ae-gmm`   | Ghosh et al., ICLR 2020 (plain AE)  | deterministic   |
| `rae-gmm`  | Ghosh et al., ICLR 2020 (RAE-L2)    | deterministic   |
| `2s-vae`   | Dai & Wipf, ICLR 2019               | variational     |
| `vamp-vae` | Tomczak & Welling, AISTATS 2018     | variational     |
| `iaf-vae`  | Kingma et al., NeurIPS 2016         | variational     |
| `vq-vae`   | van den Oord et al., NeurIPS 2017   | vqvae           |
| `mask-aae` | Mondal et al., UAI 2020             | maskaae         |
| `vae-iop`  | Takahashi et al., AAAI 2019         | iop             |
| `pioneer`  | Heljakka et al., ACCV 2018 (AGE)    | pioneer         |
| `alae`     | Pidhorskyi et al., CVPR 2020        | alae            |

`ae-gmm`, `rae-gmm`, `2s-vae` and `vq-vae` generate through an *ex-post* sampler (a GMM, a
second-stage VAE, an autoregressive prior over code indices), defined next to its model and
fitted after training as a separate step (`flexae fit-sampler RUN_DIR`, also run at the end of
`flexae train`); the file it is saved to, `RUN_DIR/sampler.pt`, belongs to `flexae.app.fit_sampler`.

Each module holds models, trainers (built from `flexae.training.steps`) and sampler fits; they are
registered by name in `flexae.registry`.
"""
