"""The SUR-adapter module is free of the official code's defects (docs/architecture.md, "The four methods")."""

import pytest
import torch

from promptlift.methods.sur_adapter import SURAdapter


def make(**kw):
    torch.manual_seed(0)
    adapter = SURAdapter(dim=32, llm_dim=12, num_heads=8, **kw)
    with torch.no_grad():  # leave the zero init so the adapter's output is not trivially x
        adapter.out.weight.normal_(0, 0.1)
    return adapter.eval()


def test_samples_in_a_batch_do_not_mix():
    adapter = make()
    x = torch.randn(3, 7, 32)
    together, _ = adapter(x)
    alone, _ = adapter(x[1:2])
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)
    changed = x.clone()
    changed[0] += 5.0  # another sample (e.g. the CFG pair's unconditional half) changes: sample 1 does not
    torch.testing.assert_close(adapter(changed)[0][1], together[1], rtol=1e-5, atol=1e-5)


def test_padding_neither_attends_nor_changes_real_tokens():
    adapter = make()
    x = torch.randn(1, 6, 32)
    mask = torch.tensor([[False, False, False, True, True, True]])
    a, _ = adapter(x, mask)
    noisy = x.clone()
    noisy[:, 3:] = torch.randn(1, 3, 32) * 10
    b, _ = adapter(noisy, mask)
    torch.testing.assert_close(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-5)


def test_zero_init_output_and_beta_mix():
    torch.manual_seed(0)
    adapter = SURAdapter(dim=32, llm_dim=12, beta=0.1).eval()
    x = torch.randn(2, 5, 32)
    y, _ = adapter(x)
    torch.testing.assert_close(y, 0.9 * x)
    with pytest.raises(ValueError, match="`beta` must be in"):
        SURAdapter(dim=32, llm_dim=12, beta=0.0)
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        SURAdapter(dim=30, llm_dim=12)


def test_inference_is_deterministic_and_the_llm_projection_reloads(tmp_path):
    adapter = make(llm_at_inference=True)
    x, llm = torch.randn(2, 5, 32), torch.randn(2, 12)
    assert torch.equal(adapter(x, llm_features=llm)[0], adapter(x, llm_features=llm)[0])  # eval: no dropout
    assert not torch.allclose(adapter(x, llm_features=llm)[0], adapter(x)[0])
    adapter.save_pretrained(tmp_path / "adapter")
    again = SURAdapter.from_pretrained(tmp_path / "adapter").eval()
    torch.testing.assert_close(again.project_llm(llm), adapter.project_llm(llm))
    torch.testing.assert_close(again(x, llm_features=llm)[0], adapter(x, llm_features=llm)[0])
    assert again.llm_at_inference is True


def test_gradient_reaches_every_adapter_weight():
    adapter = make().train()
    x, llm = torch.randn(2, 5, 32), torch.randn(2, 12)
    y, h = adapter(x)
    (y.pow(2).mean() + (h - adapter.project_llm(llm)[:, None]).pow(2).mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())


def test_feature_kl_is_zero_on_agreement_and_ignores_padding():
    from promptlift.methods.sur_adapter.losses import feature_kl, sur_objective

    x = torch.randn(2, 4, 8)
    assert feature_kl(x, x).abs() < 1e-6
    assert feature_kl(x, x + 0.5 * torch.randn(2, 4, 8)) > 0
    pooled = torch.randn(2, 1, 8)
    mask = torch.tensor([[False, False, True, True]] * 2)
    junk = x.clone()
    junk[:, 2:] = 100 * torch.randn(2, 2, 8)
    torch.testing.assert_close(feature_kl(x, pooled, mask), feature_kl(junk, pooled, mask))
    total, parts = sur_objective(torch.tensor(0.3), x, pooled[:, 0], feature_kl(x, x), mask, llm_weight=1.0,
                                 complex_weight=0.0)
    torch.testing.assert_close(total, 0.3 + parts["kl_llm"])
    assert parts["complex"].abs() < 1e-6
    total, _ = sur_objective(torch.tensor(0.3), x, pooled[:, 0], torch.tensor(2.0), mask, llm_weight=0.0,
                             complex_weight=0.5)
    torch.testing.assert_close(total, torch.tensor(1.3))


def test_lift_edits_conditional_embeddings_only_unless_asked(tmp_path, tiny_pipeline_dirs):
    from promptlift.methods.sur_adapter.lift import SURAdapterLift
    from promptlift.pipeline import prompt_padding_mask as padding_mask
    from promptlift.pipeline import encode_prompts, load_pipeline

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    adapter = SURAdapter(dim=32, llm_dim=12, num_heads=8)
    with torch.no_grad():
        adapter.out.weight.normal_(0, 0.5)
    adapter.save_pretrained(tmp_path / "adapter")
    base = encode_prompts(pipe, ["a red ball", "two boats"])
    lifted = encode_prompts(pipe, ["a red ball", "two boats"], lifts=[SURAdapterLift("sur-adapter", tmp_path / "adapter")])
    assert not torch.allclose(base.prompt_embeds, lifted.prompt_embeds)
    torch.testing.assert_close(base.negative_prompt_embeds, lifted.negative_prompt_embeds)
    both = encode_prompts(pipe, ["a red ball", "two boats"],
                          lifts=[SURAdapterLift("sur-adapter", tmp_path / "adapter", apply_to_unconditional=True)])
    assert not torch.allclose(base.negative_prompt_embeds, both.negative_prompt_embeds)
    mask = padding_mask(pipe.tokenizer, ["a red ball"], 77)
    n = len(pipe.tokenizer("a red ball").input_ids)  # start + tokens + end
    assert mask.shape == (1, 77) and n < 77 and not mask[0, :n].any() and mask[0, n:].all()
    with pytest.raises(ValueError, match="holds no adapter"):
        SURAdapterLift("sur-adapter", tmp_path / "nothing")


def make_token_reader(**kw):
    torch.manual_seed(0)
    adapter = SURAdapter(dim=32, llm_dim=12, num_heads=8, beta=1.0, llm_at_inference=True, llm_tokens=True,
                         max_length=7, **kw)
    with torch.no_grad():
        adapter.out.weight.normal_(0, 0.1)
    return adapter.eval()


def test_token_reader_keeps_samples_apart_and_ignores_teacher_padding():
    adapter = make_token_reader()
    x, states = torch.randn(3, 7, 32), torch.randn(3, 5, 12)
    real = torch.tensor([[True] * 5, [True, True, True, False, False], [True] * 4 + [False]])
    together, _ = adapter(x, llm_features=states, llm_mask=real)
    alone, _ = adapter(x[1:2], llm_features=states[1:2, :3], llm_mask=real[1:2, :3])  # no padding at all
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)
    junk = states.clone()
    junk[1, 3:] = 100 * torch.randn(2, 12)  # the teacher's padding of sample 1 changes: nothing does
    torch.testing.assert_close(adapter(x, llm_features=junk, llm_mask=real)[0], together, rtol=1e-5, atol=1e-5)
    other = states.clone()
    other[1, 0] += 3.0  # a real teacher token changes: sample 1's output moves, the others' do not
    moved = adapter(x, llm_features=other, llm_mask=real)[0]
    assert not torch.allclose(moved[1], together[1])
    torch.testing.assert_close(moved[[0, 2]], together[[0, 2]], rtol=1e-5, atol=1e-5)


def test_token_reader_needs_token_states_and_reloads(tmp_path):
    adapter = make_token_reader()
    x, states, real = torch.randn(2, 7, 32), torch.randn(2, 4, 12), torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="token states"):
        adapter(x, llm_features=torch.randn(2, 12))
    with pytest.raises(ValueError, match="set `llm_at_inference`"):
        SURAdapter(dim=32, llm_dim=12, llm_tokens=True)
    y, _ = adapter(x, llm_features=states, llm_mask=real)
    adapter.save_pretrained(tmp_path / "adapter")
    again = SURAdapter.from_pretrained(tmp_path / "adapter").eval()
    assert again.llm_tokens and again.beta == 1.0
    torch.testing.assert_close(again(x, llm_features=states, llm_mask=real)[0], y)
    adapter.train()
    out, h = adapter(x, llm_features=states, llm_mask=real)
    (out.pow(2).mean() + (h - adapter.project_llm(states.mean(1))[:, None]).pow(2).mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())


def test_an_adapter_reading_only_the_teacher_ignores_the_prompt_embedding():
    adapter = make_token_reader(read_prompt_embeds=False)
    x, states, real = torch.randn(2, 7, 32), torch.randn(2, 4, 12), torch.ones(2, 4, dtype=torch.bool)
    y, _ = adapter(x, llm_features=states, llm_mask=real)
    torch.testing.assert_close(adapter(100 * torch.randn(2, 7, 32), llm_features=states, llm_mask=real)[0], y)
    assert not hasattr(adapter, "token_attention")
    adapter.train()
    out, h = adapter(x, llm_features=states, llm_mask=real)
    (out.pow(2).mean() + (h - adapter.project_llm(states.mean(1))[:, None]).pow(2).mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())
    with pytest.raises(ValueError, match="set `llm_tokens`"):
        SURAdapter(dim=32, llm_dim=12, read_prompt_embeds=False)


def test_attribute_head_classifies_the_adapted_embedding_and_reloads(tmp_path):
    adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, attribute_classes=[5, 3])
    logits = adapter.classify_attributes(torch.randn(2, 7, 16))
    assert [tuple(x.shape) for x in logits] == [(2, 5), (2, 3)]
    adapter.save_pretrained(tmp_path)
    again = SURAdapter.from_pretrained(tmp_path)
    assert again.attribute_classes == [5, 3]
    with pytest.raises(ValueError, match="attribute_classes"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4).classify_attributes(torch.randn(2, 7, 16))


def test_slots_pool_the_real_teacher_tokens_and_the_head_reads_pool_j():
    """With `slots`, each attention pool is a convex mix of the teacher's real tokens (padding gets no weight, so a
    padded batch gives each prompt what it gets alone), and attribute j's head reads pool j."""
    torch.manual_seed(0)
    adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                         read_prompt_embeds=False, attribute_classes=[5, 3], slots=4).eval()
    torch.nn.init.normal_(adapter.out.weight)  # the zero-initialised output would hide the pools' effect
    x, tokens = torch.randn(2, 7, 16), torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    padded = tokens.clone()
    padded[0, 4:] = 100.0  # padding the pools must not read
    y = adapter(x, None, padded, mask)[0]
    alone = adapter(x[:1], None, tokens[:1, :4], mask[:1, :4])[0]
    torch.testing.assert_close(y[:1], alone)
    pools = adapter._pool(adapter.llm_norm(padded), mask)
    assert pools.shape == (2, 4, 8) and pools[0].abs().max() < 10
    logits = adapter.classify_attributes(y, padded, mask)
    torch.testing.assert_close(logits[1], adapter.attribute_head[1](pools[:, 1]))
    with pytest.raises(ValueError, match="llm_features"):
        adapter.classify_attributes(y)
    with pytest.raises(ValueError, match="slots"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4, llm_at_inference=True, llm_tokens=True, attribute_classes=[5, 3, 2],
                   slots=2)
    with pytest.raises(ValueError, match="llm_tokens"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4, slots=2)


def test_without_llm_norm_the_pools_read_the_teachers_states_as_they_are(tmp_path):
    """`llm_norm=False`: no LayerNorm between the teacher and the pools (the probe's form), and a reload keeps it."""
    torch.manual_seed(0)
    adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                         read_prompt_embeds=False, attribute_classes=[5, 3], slots=2, llm_norm=False).eval()
    x, tokens, mask = torch.randn(2, 7, 16), torch.randn(2, 6, 8) * 30, torch.ones(2, 6, dtype=torch.bool)
    weights = adapter.slot_scores(tokens).softmax(1)  # (B, T, K) over the raw states
    raw = torch.einsum("btk,btd->bkd", weights, tokens)
    logits = adapter.classify_attributes(adapter(x, None, tokens, mask)[0], tokens, mask)
    torch.testing.assert_close(logits[0], adapter.attribute_head[0](raw[:, 0]))
    assert not any("llm_norm" in name for name, _ in adapter.named_parameters())
    adapter.save_pretrained(tmp_path)
    reloaded = SURAdapter.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(x, None, tokens, mask)[0], adapter(x, None, tokens, mask)[0])
    normed = SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                        read_prompt_embeds=False, attribute_classes=[5, 3], slots=2)
    assert any("llm_norm" in name for name, _ in normed.named_parameters())


def test_pools_only_adapter_reads_the_teacher_through_its_pools_alone():
    """With `pools_only` the output depends on the teacher's tokens only through the pools: two token sets with the
    same pool give the same output (and do not when the tokens are read as well)."""
    x = torch.randn(1, 5, 16)
    tokens = torch.randn(1, 2, 8)
    averaged = tokens.mean(1, keepdim=True).repeat(1, 2, 1)  # the same uniform pool, other tokens
    outputs = {}
    for only in (True, False):
        torch.manual_seed(0)
        adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                             read_prompt_embeds=False, slots=1, pools_only=only).eval()
        torch.nn.init.normal_(adapter.out.weight)
        torch.nn.init.zeros_(adapter.slot_scores.weight)  # uniform attention: the pool is the tokens' mean
        adapter.llm_norm = torch.nn.Identity()
        outputs[only] = adapter(x, None, tokens)[0], adapter(x, None, averaged)[0]
    torch.testing.assert_close(*outputs[True])
    assert not torch.allclose(*outputs[False])
    with pytest.raises(ValueError, match="slots"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4, llm_at_inference=True, llm_tokens=True, pools_only=True)


def test_class_memory_renders_the_heads_classes_not_the_pools():
    """With `class_memory` (and only the attributes' pools read) the output follows the head's class probabilities:
    teacher tokens the head classifies alike give the same output; the head's gradient comes from the output too."""
    torch.manual_seed(0)
    adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                         read_prompt_embeds=False, attribute_classes=[3, 2], slots=2, pools_only=True,
                         class_memory=True).eval()
    torch.nn.init.normal_(adapter.out.weight)
    x, a, b = torch.randn(1, 5, 16), torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    assert not torch.allclose(adapter(x, None, a)[0], adapter(x, None, b)[0])
    for head in adapter.attribute_head:  # every teacher input classified alike
        torch.nn.init.zeros_(head.weight)
    torch.testing.assert_close(adapter(x, None, a)[0], adapter(x, None, b)[0])
    adapter(x, None, a)[0].sum().backward()
    assert adapter.attribute_head[0].bias.grad.abs().sum() > 0 and adapter.class_embeddings[1].grad is not None
    assert not hasattr(adapter, "slot_projection")  # no parameter a multi-process run would leave without a gradient
    with pytest.raises(ValueError, match="class_memory"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4, llm_at_inference=True, llm_tokens=True, slots=2, class_memory=True)


def test_a_probe_head_learns_from_its_labels_alone():
    """With `probe_head` the rendering reads the head's classes without training the head, its pools or the
    teacher's norm: the output's gradient reaches the class embeddings only, the attribute term's the head; the
    output is the same function as without it."""
    def build(probe_head):
        torch.manual_seed(0)
        return SURAdapter(dim=16, llm_dim=8, num_heads=4, beta=1.0, llm_at_inference=True, llm_tokens=True,
                          read_prompt_embeds=False, attribute_classes=[3, 2], slots=2, pools_only=True,
                          class_memory=True, probe_head=probe_head).eval()

    probe, joint = build(True), build(False)
    torch.nn.init.normal_(probe.out.weight)
    joint.load_state_dict(probe.state_dict())
    x, tokens = torch.randn(2, 5, 16), torch.randn(2, 3, 8)
    torch.testing.assert_close(probe(x, None, tokens)[0], joint(x, None, tokens)[0])
    def head(adapter):  # the head and what feeds it: the pools' scores and the teacher's norm
        return [*adapter.attribute_head.parameters(), *adapter.slot_scores.parameters(), *adapter.llm_norm.parameters()]

    for adapter in (probe, joint):
        adapter(x, None, tokens)[0].sum().backward()
        assert adapter.class_embeddings[0].grad.abs().sum() > 0
    assert all(p.grad is None or not p.grad.any() for p in head(probe))
    assert any(p.grad is not None and p.grad.any() for p in head(joint))
    labels = torch.tensor([2, 1])
    torch.nn.functional.cross_entropy(probe.classify_attributes(x, tokens)[0], labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in probe.attribute_head[0].parameters())
    with pytest.raises(ValueError, match="probe_head"):  # a pool beyond the attributes' would share the head's norm
        SURAdapter(dim=16, llm_dim=8, num_heads=4, llm_at_inference=True, llm_tokens=True, attribute_classes=[3, 2],
                   slots=3, pools_only=True, class_memory=True, probe_head=True)


def test_learnt_gate_reads_the_base_embedding_of_real_tokens_only():
    torch.manual_seed(0)
    adapter = SURAdapter(dim=16, llm_dim=8, num_heads=4, gate=True)
    x = torch.randn(2, 6, 16)
    padding = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    noisy = x.clone()
    noisy[0, 4:] = 50.0
    torch.testing.assert_close(adapter.gate_logit(noisy, padding)[:1], adapter.gate_logit(x[:1, :4]))
    assert adapter.gate_logit(x, padding).shape == (2,)
    with pytest.raises(ValueError, match="gate"):
        SURAdapter(dim=16, llm_dim=8, num_heads=4).gate_logit(x)
