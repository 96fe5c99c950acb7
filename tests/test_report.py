"""WER reports: 2017 selection rules, corpus figures, best/median/worst."""

from __future__ import annotations

import json

import pytest

from deepspeech.training.report import calculate_report, make_sample


def test_report_follows_the_2017_rules_and_adds_corpus_figures() -> None:
    samples = [
        make_sample("a.wav", "the cat sat", "the cat sat", 1.0),  # WER 0
        make_sample("b.wav", "the cat sat", "the bat sat", 5.0),  # WER 1/3
        make_sample("c.wav", "a dog", "a fog", 2.0),  # WER 1/2
        make_sample("d.wav", "one two three four", "one", 9.0),  # WER 3/4
    ]
    report = calculate_report("test", samples, report_count=2)
    # two lowest-loss samples with errors (c: 2.0, b: 5.0), shown by WER
    assert [s.wav_filename for s in report.worst_samples] == ["b.wav", "c.wav"]
    assert report.mean_wer == pytest.approx((0 + 1 / 3 + 1 / 2 + 3 / 4) / 4)
    assert report.wer == pytest.approx((0 + 1 + 1 + 3) / (3 + 3 + 2 + 4))
    assert report.best.wav_filename == "a.wav" and report.worst.wav_filename == "d.wav"
    assert report.median.wav_filename == "c.wav"
    assert report.mean_loss == pytest.approx(17 / 4)
    text = report.to_text()
    assert "WER 41.67%" in text and "'a fog'" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_samples"] == 4 and data["samples"][0]["wer"] == pytest.approx(1 / 3)


def test_perfect_results_show_no_error_samples() -> None:
    report = calculate_report("dev", [make_sample("a.wav", "hi", "hi", 0.1)], report_count=5)
    assert report.wer == 0 and report.cer == 0 and report.worst_samples == ()


def test_empty_set_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        calculate_report("dev", [], report_count=5)
