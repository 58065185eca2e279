"""The sharded model in this process (world size 1 over gloo, FSDP2's code path): built on the meta device and
read from safetensors bit for bit as `from_pretrained` reads it, and exported file by file into a folder that
`from_pretrained` loads back identical. Two ranks and a larger model: test_sharded_model_torchrun.py."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor, Shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from kubetune.api.trainer_config import TrainingOptions
from kubetune.trainer.architectures import ARCHITECTURES
from kubetune.trainer.distributed import DistributedEnv, shard_placement
from kubetune.trainer.export import export_hf_model, plan_export_files
from kubetune.trainer.modeling import ModelSource, ModelSourceError, load_model, resolve_model_source
from kubetune.trainer.steps import forward_summed_loss
from kubetune.trainer.weight_loading import INDEX_FILE, SINGLE_FILE, LocalShard, copy_region, local_shard_of

pytestmark = pytest.mark.trainer

CPU = torch.device("cpu")
OPTIONS = TrainingOptions(device="cpu")


@pytest.fixture
def process_group(single_process_group):
    dist.init_process_group("gloo")
    yield DistributedEnv(rank=0, world_size=1, local_rank=0)
    dist.destroy_process_group()


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.full_tensor() if isinstance(t, DTensor) else t for name, t in model.state_dict().items()}


def a_batch(vocab: int) -> dict:
    generator = torch.Generator().manual_seed(3)
    input_ids = torch.randint(0, vocab, (1, 48), generator=generator)
    return {"input_ids": input_ids, "labels": input_ids.clone(), "position_ids": torch.arange(48).unsqueeze(0)}


# ---- loading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "mixtral"])
def test_the_sharded_load_equals_from_pretrained_bit_for_bit(family, tiny_model_dir, process_group):
    folder = tiny_model_dir(family)
    model = load_model(ModelSource(str(folder)), CPU, OPTIONS)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")

    expected, actual = reference.state_dict(), full_state(model)
    assert actual.keys() == expected.keys()
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name
    expected_buffers = dict(reference.named_buffers())  # rotary inv_freq: computed, not read
    for name, buffer in model.named_buffers():
        assert not buffer.is_meta and torch.equal(buffer, expected_buffers[name]), name
    batch = a_batch(model.config.vocab_size)
    assert torch.equal(forward_summed_loss(model, batch), forward_summed_loss(reference, batch))


def test_tied_embeddings_stay_one_tensor(tiny_model_dir, process_group):
    model = load_model(ModelSource(str(tiny_model_dir("llama"))), CPU, OPTIONS)
    assert model.config.tie_word_embeddings
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_every_mixtral_decoder_layer_is_an_fsdp_unit_with_its_experts_sharded(tiny_model_dir, process_group):
    model = load_model(ModelSource(str(tiny_model_dir("mixtral"))), CPU, OPTIONS)
    layers = list(model.model.layers)
    assert len(layers) == 2 and all(isinstance(layer, FSDPModule) for layer in layers)
    for layer in layers:
        experts = layer.mlp.experts
        for parameter in (experts.gate_up_proj, experts.down_proj):
            assert isinstance(parameter, DTensor) and tuple(parameter.placements) == (Shard(0),)
            assert parameter.shape[0] == 3  # one rank: sharded by expert (two split the rows: see shard_placement)


@pytest.mark.parametrize("experts, world_size, expected", [(8, 8, None), (8, 4, None), (8, 16, Shard(1)), (3, 2, Shard(1))])
def test_stacked_experts_that_do_not_divide_over_the_ranks_split_along_their_rows(experts, world_size, expected):
    stacked = torch.nn.Parameter(torch.empty(experts, 16, 8, device="meta"))
    assert shard_placement(stacked, world_size) == expected
    assert shard_placement(torch.nn.Parameter(torch.empty(3, 8, device="meta")), 2) is None  # dense weights: dim 0


@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_each_rank_copies_its_part_of_every_expert_from_the_files(tmp_path, dim, world_size):
    """The geometry of stacked experts: Mixtral's files hold w1 and w3 per expert, the model one tensor of
    experts × [w1; w3] × hidden; every rank's chunk of any dimension, even one that cuts an expert's
    [w1; w3] in the middle, is filled from the files, and the chunks make up the stacked tensor."""
    architecture = ARCHITECTURES["mixtral"]
    stacked = torch.randn(3, 2 * 5, 4)  # 3 experts, intermediate 5, hidden 4
    parameter = "model.layers.0.mlp.experts.gate_up_proj"
    files = {}
    for expert in range(3):
        files[f"model.layers.0.block_sparse_moe.experts.{expert}.w1.weight"] = stacked[expert, :5].clone()
        files[f"model.layers.0.block_sparse_moe.experts.{expert}.w3.weight"] = stacked[expert, 5:].clone()
    save_file(files, tmp_path / SINGLE_FILE)

    chunks = []
    for rank in range(world_size):
        size = stacked.shape[dim]
        chunk = -(-size // world_size)
        start, stop = min(rank * chunk, size), min((rank + 1) * chunk, size)
        local_shape = list(stacked.shape)
        local_shape[dim] = stop - start
        shard = LocalShard(torch.full(local_shape, float("nan")), dim, start, stop, tuple(stacked.shape))
        with safe_open(str(tmp_path / SINGLE_FILE), "pt") as checkpoint:
            for key in checkpoint.keys():
                region = architecture.region_of(key)
                assert region.parameter == parameter
                copy_region(checkpoint.get_slice(key), key, region, shard)
        assert shard.complete()
        chunks.append(shard.tensor)
    assert torch.equal(torch.cat(chunks, dim=dim), stacked)


def test_bf16_weights_in_several_files_load_as_from_pretrained_loads_them(tmp_path, tiny_model_dir, process_group):
    """Real checkpoints: bf16 files and an index, an lm_head of its own; upcasting bf16 to fp32 is exact."""
    folder = tmp_path / "bf16"
    untied = AutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), dtype=torch.bfloat16, tie_word_embeddings=False)
    untied.save_pretrained(folder, max_shard_size="60KB")
    AutoTokenizer.from_pretrained(tiny_model_dir("llama")).save_pretrained(folder)
    assert len(set(json.loads((folder / INDEX_FILE).read_text())["weight_map"].values())) >= 3

    model = load_model(ModelSource(str(folder)), CPU, OPTIONS)
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    expected = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    actual = full_state(model)
    assert actual.keys() == expected.keys()
    for name, tensor in actual.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, expected[name]), name


def _copy_with_weights(source: Path, target: Path, change) -> Path:
    shutil.copytree(source, target)
    weights = load_file(target / SINGLE_FILE)
    change(weights)
    save_file(weights, target / SINGLE_FILE, metadata={"format": "pt"})
    return target


def test_a_missing_weight_is_a_user_error_that_names_it(tmp_path, tiny_model_dir, process_group):
    folder = _copy_with_weights(tiny_model_dir("llama"), tmp_path / "missing", lambda w: w.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ModelSourceError, match=r"lack 1 weights: model\.layers\.1\.mlp\.up_proj\.weight"):
        load_model(ModelSource(str(folder)), CPU, OPTIONS)


def test_a_misshapen_weight_is_a_user_error_that_names_it(tmp_path, tiny_model_dir, process_group):
    def shrink(weights):
        weights["model.norm.weight"] = weights["model.norm.weight"][:10]

    folder = _copy_with_weights(tiny_model_dir("llama"), tmp_path / "misshapen", shrink)
    with pytest.raises(ModelSourceError, match=r"model\.norm\.weight has shape \(10,\), the model expects \(64,\)"):
        load_model(ModelSource(str(folder)), CPU, OPTIONS)


def test_an_unsupported_architecture_is_refused_before_loading(tmp_path, process_group):
    import transformers

    folder = tmp_path / "gpt2"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(folder)
    with pytest.raises(ModelSourceError, match=r"model_type 'gpt2' is not supported \(supported: llama, mistral, mixtral, qwen2"):
        load_model(ModelSource(str(folder)), CPU, OPTIONS)


def test_a_buffer_left_uncomputed_stops_the_load(tiny_model_dir, process_group, monkeypatch):
    """to_empty leaves non-persistent buffers uninitialised: one that nothing recomputes must not train."""
    from transformers.models.llama.modeling_llama import LlamaForCausalLM

    monkeypatch.setattr(LlamaForCausalLM, "_init_weights", lambda self, module: None)
    with pytest.raises(NotImplementedError, match="inv_freq"):
        load_model(ModelSource(str(tiny_model_dir("llama"))), CPU, OPTIONS)


def test_a_hub_id_reads_the_snapshot_in_the_model_cache(tmp_path, tiny_model_dir, recipe_config, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "cache"
    snapshot = cache / "models--org--tiny" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_model_dir("llama"), snapshot)
    (cache / "models--org--tiny" / "refs").mkdir()
    (cache / "models--org--tiny" / "refs" / "main").write_text("0123abcd")
    config = recipe_config(tmp_path, "hf://org/tiny", "hub")
    config = config.model_copy(update={"paths": config.paths.model_copy(update={"model_cache": cache})})
    assert resolve_model_source(config) == ModelSource(str(snapshot), cache)

    (snapshot / SINGLE_FILE).unlink()  # only the tokenizer was cached: the weights are still to download
    assert resolve_model_source(config) == ModelSource("org/tiny", cache)


# ---- export ----------------------------------------------------------------------------------------


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Weights unlike the base model's, so an export of the base files cannot pass for the trained one."""
    with torch.no_grad():
        for index, parameter in enumerate(model.parameters()):
            local_shard_of(parameter).tensor.add_(0.01 * (index + 1))
    return model


def test_the_export_is_written_file_by_file_and_loads_back_identical(tmp_path, tiny_model_dir, process_group):
    folder = tiny_model_dir("llama")
    model = _perturbed(load_model(ModelSource(str(folder)), CPU, OPTIONS))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    bound = 40_000
    export_dir = export_hf_model(model, tokenizer, tmp_path / "export", process_group, max_shard_bytes=bound)

    index = json.loads((export_dir / INDEX_FILE).read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 3 and files == sorted(p.name for p in export_dir.glob("model-*.safetensors"))
    for name in files:
        with safe_open(str(export_dir / name), "pt") as exported:
            sizes = [exported.get_slice(k).get_shape() for k in exported.keys()]
        assert len(sizes) == 1 or sum(torch.Size(s).numel() * 4 for s in sizes) <= bound, name
    assert "lm_head.weight" not in index["weight_map"]  # tied: written once, as save_pretrained does

    reloaded = AutoModelForCausalLM.from_pretrained(export_dir)
    trained = full_state(model)
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    config = json.loads((export_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["use_cache"] is True
    assert AutoTokenizer.from_pretrained(export_dir).chat_template == tokenizer.chat_template


def test_a_mixtral_export_keeps_one_matrix_per_expert_as_its_files_do(tmp_path, tiny_model_dir, process_group):
    folder = tiny_model_dir("mixtral")
    model = _perturbed(load_model(ModelSource(str(folder)), CPU, OPTIONS))
    export_dir = export_hf_model(model, AutoTokenizer.from_pretrained(folder), tmp_path / "export", process_group, max_shard_bytes=100_000)

    exported_keys = set(json.loads((export_dir / INDEX_FILE).read_text())["weight_map"])
    with safe_open(str(folder / SINGLE_FILE), "pt") as base:
        assert exported_keys == set(base.keys())  # the base model's (and save_pretrained's) layout
    assert "model.layers.1.block_sparse_moe.experts.2.w3.weight" in exported_keys
    reloaded = AutoModelForCausalLM.from_pretrained(export_dir)
    trained = full_state(model)
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_a_new_export_replaces_every_file_of_an_earlier_one(tmp_path, tiny_model_dir, process_group):
    folder = tiny_model_dir("llama")
    model = load_model(ModelSource(str(folder)), CPU, OPTIONS)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    export_hf_model(model, tokenizer, tmp_path / "export", process_group, max_shard_bytes=40_000)
    export_dir = export_hf_model(model, tokenizer, tmp_path / "export", process_group)
    assert sorted(p.name for p in export_dir.glob("model*")) == [SINGLE_FILE]
    assert AutoModelForCausalLM.from_pretrained(export_dir) is not None


def test_the_export_plan_is_bounded_and_writes_a_tied_weight_once(tiny_model_dir, process_group):
    model = load_model(ModelSource(str(tiny_model_dir("llama"))), CPU, OPTIONS)
    files = plan_export_files(model, max_shard_bytes=40_000)
    names = [entry.name for entry in sum(files, [])]
    assert len(names) == len(set(names)) == len(list(model.parameters()))
    for entries in files:
        assert len(entries) == 1 or sum(entry.nbytes for entry in entries) <= 40_000
