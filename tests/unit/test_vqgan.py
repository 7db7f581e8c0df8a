"""Our VQGAN loads taming-transformers checkpoints and computes what taming's modules compute."""

from __future__ import annotations

import pytest
import torch
import yaml

from clipsearch.generate.vqgan import VQGANConfig, VQGANError, load_vqgan

DD = {
    "double_z": False,
    "z_channels": 32,
    "resolution": 32,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [16],
    "dropout": 0.0,
}


def _taming_model(n_embed: int = 64, embed_dim: int = 16) -> torch.nn.Module:
    """taming's VQModel, built from its own modules (taming.models.vqgan needs Lightning)."""
    model_mod = pytest.importorskip("taming.modules.diffusionmodules.model")
    quant_mod = pytest.importorskip("taming.modules.vqvae.quantize")
    torch.manual_seed(0)
    m = torch.nn.Module()
    m.encoder = model_mod.Encoder(**DD)
    m.decoder = model_mod.Decoder(**DD)
    m.quantize = quant_mod.VectorQuantizer2(n_embed, embed_dim, beta=0.25)
    m.quant_conv = torch.nn.Conv2d(DD["z_channels"], embed_dim, 1)
    m.post_quant_conv = torch.nn.Conv2d(embed_dim, DD["z_channels"], 1)
    with torch.no_grad():  # random weights everywhere, not the tiny default init
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        m.quantize.embedding.weight.normal_()
    return m.eval()


def _save_like_taming(m: torch.nn.Module, folder, n_embed=64, embed_dim=16):
    folder.mkdir(parents=True, exist_ok=True)
    sd = dict(m.state_dict())
    sd["loss.discriminator.main.0.weight"] = torch.zeros(3)  # real checkpoints carry the loss
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 1000}, folder / "last.ckpt")
    cfg = VQGANConfig(DD, n_embed, embed_dim).to_yaml_dict()
    cfg["model"]["base_learning_rate"] = 4.5e-6
    cfg["model"]["params"]["lossconfig"] = {
        "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
        "params": {"disc_start": 250001, "disc_weight": 0.8, "codebook_weight": 1.0},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def test_taming_checkpoint_loads_and_matches_reference(tmp_path):
    ref = _taming_model()
    folder = _save_like_taming(ref, tmp_path / "vq")
    ours = load_vqgan(folder)
    assert ours.factor == 4
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        h_ref = ref.quant_conv(ref.encoder(x))
        h = ours.encode(x)
        torch.testing.assert_close(h, h_ref, rtol=1e-4, atol=1e-4)
        zq_ref, _, (_, _, idx_ref) = ref.quantize(h_ref)
        zq, _ = ours.quantize(h)
        assert torch.equal(ours.quantize.indices(h).flatten(), idx_ref.flatten())
        torch.testing.assert_close(zq, zq_ref, rtol=1e-5, atol=1e-5)
        out_ref = ref.decoder(ref.post_quant_conv(zq_ref))
        torch.testing.assert_close(ours.decode(zq), out_ref, rtol=1e-4, atol=1e-4)
    # A bigger picture than the training resolution works too (generation makes any multiple).
    with torch.no_grad():
        z = torch.randn(1, 16, 12, 10)
        torch.testing.assert_close(
            ours.decode(z), ref.decoder(ref.post_quant_conv(z)), rtol=1e-4, atol=1e-4
        )


def test_ckpt_path_or_yaml_path_work_too(tmp_path):
    folder = _save_like_taming(_taming_model(), tmp_path / "vq")
    assert load_vqgan(folder / "last.ckpt").config.n_embed == 64
    assert load_vqgan(folder / "model.yaml").config.embed_dim == 16


def test_missing_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(VQGANError, match="no VQGAN checkpoint") as err:
        load_vqgan(tmp_path / "nope.ckpt")
    assert "vqgan_imagenet_f16_16384" in str(err.value) and "--drawer pixel" in str(err.value)


def test_checkpoint_that_does_not_match_its_config(tmp_path):
    folder = _save_like_taming(_taming_model(), tmp_path / "vq")
    cfg = yaml.safe_load((folder / "model.yaml").read_text())
    cfg["model"]["params"]["n_embed"] = 128
    (folder / "model.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(VQGANError, match=r"does not match its config.*shape: quantize"):
        load_vqgan(folder)


def test_truncated_checkpoint_and_bad_yaml(tmp_path):
    folder = _save_like_taming(_taming_model(), tmp_path / "vq")
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(VQGANError, match="cannot read VQGAN checkpoint"):
        load_vqgan(folder)
    (folder / "model.yaml").write_text("model: [1, 2\n")
    with pytest.raises(VQGANError, match="not a taming VQGAN config"):
        load_vqgan(folder)


def test_gumbel_models_are_refused_clearly(tmp_path):
    folder = _save_like_taming(_taming_model(), tmp_path / "vq")
    cfg = yaml.safe_load((folder / "model.yaml").read_text())
    cfg["model"]["target"] = "taming.models.vqgan.GumbelVQ"
    (folder / "model.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(VQGANError, match="only taming's VQModel"):
        load_vqgan(folder)


class _LightningCallback:
    """Stands for the objects a Lightning checkpoint pickles next to the weights."""

    def __init__(self) -> None:
        self.monitor = "val/rec_loss"


class _Evil:
    def __init__(self, target) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_lightning_checkpoints_with_pickled_objects_load_without_running_them(tmp_path):
    ref = _taming_model()
    folder = _save_like_taming(ref, tmp_path / "vq")
    marker = tmp_path / "pwned"
    torch.save(
        {
            "state_dict": ref.state_dict(),
            "callbacks": {"cb": _LightningCallback()},
            "hyper": _Evil(marker),
        },
        folder / "last.ckpt",
    )
    ours = load_vqgan(folder)
    assert not marker.exists()
    with torch.no_grad():
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        torch.testing.assert_close(ours.encode(x), ref.quant_conv(ref.encoder(x)))


def test_the_shipped_tiny_vqgan_is_a_taming_checkpoint_too():
    """taming's own modules load data/models/tiny-vqgan strictly and decode the same."""
    from clipsearch.resources import data_dir

    model_mod = pytest.importorskip("taming.modules.diffusionmodules.model")
    quant_mod = pytest.importorskip("taming.modules.vqvae.quantize")
    folder = data_dir() / "models" / "tiny-vqgan"
    params = yaml.safe_load((folder / "model.yaml").read_text())["model"]["params"]
    dd = params["ddconfig"]
    ref = torch.nn.Module()
    ref.encoder, ref.decoder = model_mod.Encoder(**dd), model_mod.Decoder(**dd)
    ref.quantize = quant_mod.VectorQuantizer2(params["n_embed"], params["embed_dim"], beta=0.25)
    ref.quant_conv = torch.nn.Conv2d(dd["z_channels"], params["embed_dim"], 1)
    ref.post_quant_conv = torch.nn.Conv2d(params["embed_dim"], dd["z_channels"], 1)
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    ref.load_state_dict(state, strict=True)
    ours = load_vqgan(folder)
    assert ours.factor == 4 and ours.name == "tiny-vqgan"
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        zq_ref = ref.quantize(ref.quant_conv(ref.encoder(x.clone())))[0]
        out_ref = ref.decoder(ref.post_quant_conv(zq_ref))
        torch.testing.assert_close(ours(x)[0], out_ref, rtol=1e-4, atol=1e-4)
