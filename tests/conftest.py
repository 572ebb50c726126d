import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def no_figure_left_open():
    """Figure functions draw on standalone Figures: none may stay open in pyplot."""
    import matplotlib.pyplot as plt

    yield
    assert plt.get_fignums() == []
