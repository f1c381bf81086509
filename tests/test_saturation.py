import numpy as np
import pytest
import scipy.linalg
import torch

from crbnet import saturation


def test_greens_function_values():
    assert saturation.greens_function(0.0) == pytest.approx(1.0, abs=1e-15)
    assert saturation.greens_function(10.0) == pytest.approx(0.14712468680944424, rel=1e-12)


def test_greens_function_against_adaptive_quadrature():
    from scipy.integrate import quad

    for k in (0.3, 3.0, 40.0, 400.0):
        expected = quad(lambda z: np.exp(-(k**2) * (3 * z * z - 1) ** 2 / 8), 0, 1, points=[3**-0.5], limit=400,
                        epsabs=1e-14, epsrel=1e-12)[0]
        assert saturation.greens_function(k) == pytest.approx(expected, rel=1e-9)


def test_linear_model_against_matrix_exponential():
    for rho, tau, omega in [(0.15, 50.0, 0.06), (0.2, 5.0, 0.5), (0.9, 3.0, 0.1), (0.02, 800.0, 0.004)]:
        z = scipy.linalg.expm(np.array([[-rho, omega], [-omega, 0.0]]) * tau) @ np.array([0.0, 1.0])
        assert saturation.linear_z(np.array([rho]), tau, np.array([omega]))[0] == pytest.approx(z[1], rel=1e-10, abs=1e-13)


def test_rho_matches_closed_form_as_omega_goes_to_zero():
    for tau in (2.0, 50.0, 400.0):
        rho0 = saturation.rho_small_omega(tau)
        matched = saturation._match_rho(tau, np.array([0.02]))[0]  # small nutation: O(nutation^2) from the limit
        assert matched == pytest.approx(rho0, rel=2e-4)


def test_volterra_solution_converges():
    omega = np.array([0.01, 0.05])
    coarse = saturation.semisolid_z(60.0, omega, steps=128)
    fine = saturation.semisolid_z(60.0, omega, steps=1024)
    assert np.max(np.abs(coarse - fine)) < 1e-4
    assert np.all(fine < 1) and np.all(fine > -1)


def test_documented_example_and_range():
    rate = saturation.r2sl(*(torch.tensor(v, dtype=torch.float64) for v in (500e-6, np.pi, 1.0, 10e-6)))
    assert float(rate) == pytest.approx(1.6e4, rel=0.05)
    table = saturation.rho_table()
    assert 0.02 < table.min() and table.max() < 0.3


def test_interpolant_hits_nodes_and_is_c1():
    log_tau, nutation = saturation.table_axes()
    i, j = 37, 20
    tau = torch.tensor(np.exp(log_tau[i]), dtype=torch.float64)
    node = saturation.rho(tau, torch.tensor(nutation[j], dtype=torch.float64))
    assert float(node) == pytest.approx(saturation.rho_table()[i, j], rel=1e-12)
    # one-sided slopes in the nutation direction agree across the knot (C1); a jump would show at O(1)
    h = 1e-5 * (nutation[1] - nutation[0])
    y = torch.tensor([nutation[j] - 2 * h, nutation[j] - h, nutation[j], nutation[j] + h, nutation[j] + 2 * h],
                     dtype=torch.float64)
    r = saturation.rho(tau.expand(5), y).numpy()
    left, right = (r[2] - r[0]) / (2 * h), (r[4] - r[2]) / (2 * h)
    assert left == pytest.approx(right, rel=1e-3, abs=1e-9)
