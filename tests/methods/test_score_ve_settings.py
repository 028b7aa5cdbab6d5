"""score_ve's settings: Song et al.'s pc defaults (snr 0.16, one corrector step), the refusals of a bad snr,
predictor or denoise flag (each names the setting and the allowed values), and numbers kept as given in a
form that keys the model the same way however the spec writes them."""

from __future__ import annotations

import json

import pytest

from odebench.methods import get_method


def test_pc_defaults_are_song_et_al_cifar10_values():
    h = get_method("score_ve", sigma_max=50.0).hparams
    assert (h["snr"], h["corrector_steps"], h["predictor"], h["denoise"]) == (0.16, 1, "reverse_diffusion", True)


def test_snr_must_be_positive():
    assert get_method("score_ve", sigma_max=50.0, snr=1e-6).hparams["snr"] == 1e-6
    with pytest.raises(ValueError, match=r"score_ve snr must be positive, got 0"):
        get_method("score_ve", sigma_max=50.0, snr=0)


def test_an_unknown_predictor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"score_ve predictor must be one of reverse_diffusion, euler_maruyama; "
                                         r"got 'langevin'"):
        get_method("score_ve", sigma_max=50.0, predictor="langevin")


def test_denoise_must_be_a_bool_and_the_message_names_it():
    with pytest.raises(ValueError, match=r"^score_ve denoise must be true or false, got 'yes'$"):
        get_method("score_ve", sigma_max=50.0, denoise="yes")


def test_sigmas_are_kept_as_given_and_written_the_same_whatever_the_number_type():
    as_int = get_method("score_ve", sigma_min=1, sigma_max=50).hparams
    as_float = get_method("score_ve", sigma_min=1.0, sigma_max=50.0).hparams
    assert (as_int["sigma_min"], as_int["sigma_max"]) == (1.0, 50.0)
    # the hparams key the model cache: 50 and 50.0 in a spec are one setting
    assert json.dumps(as_int, sort_keys=True) == json.dumps(as_float, sort_keys=True)
    assert get_method("score_ve").hparams["sigma_max"] == "data"  # resolved later from the training split
