"""The public API: what `promptlift` exports is what a user calls, and every name's docstring example runs."""

import doctest

import pytest

import promptlift

PUBLIC = [name for name in promptlift.__all__ if name != "__version__"]


def test_the_package_exports_the_users_calls_only():
    assert set(PUBLIC) == {
        "load_pipeline", "load_lift", "set_lifts", "get_lifts", "disable_lifts", "unload_lifts", "lift", "unlift",
        "bundle_lift", "Lift", "LoraLift", "ComponentLift", "KeywordsLift", "TextCraftorLift", "SURAdapterLift",
        "RefinerLift", "train", "TextCraftorConfig", "SURAdapterConfig", "RefinerConfig", "QualityTuningConfig"}
    assert sorted(dir(promptlift)) == sorted(promptlift.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'pipeline_lifts'"):
        promptlift.pipeline_lifts  # noqa: B018 (internals live in their modules)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring_example_that_runs(name, tmp_path, world_set):
    obj = getattr(promptlift, name)
    found = [test for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs={"tmp": tmp_path, "data": world_set})
             if test.examples]
    assert found, f"promptlift.{name} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in found:
        runner.run(test)
    assert runner.failures == 0, f"promptlift.{name}'s docstring example failed (its output is above)"
