"""File writing and reading helpers: atomic writes with the umask's mode, YAML numbers as YAML 1.2 reads them."""

import math
import os
import stat

import pytest
from crbnet.io.atomic import atomic_path, write_csv
from crbnet.io.yamlfile import load, non_finite


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        import pandas as pd

        write_csv(pd.DataFrame({"a": [1.0]}), tmp_path / "t.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == mode


def test_a_failed_atomic_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "m.pt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_yaml_numbers_as_yaml_1_2_reads_them():
    values = load("a: 3e-4\nb: [1e5, -2E+3, 1.5e-3, 12, abc, 1e, 3e-4x, '3e-4']\nc: .inf\nd: .nan\n")
    assert values["a"] == 3e-4 and values["b"][:4] == [1e5, -2e3, 1.5e-3, 12]
    assert values["b"][4:] == ["abc", "1e", "3e-4x", "3e-4"]  # text stays text, quoted numbers too
    found = dict(non_finite(values))
    assert set(found) == {("c",), ("d",)} and found[("c",)] == math.inf and math.isnan(found[("d",)])
