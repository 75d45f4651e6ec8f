"Reading `/invocations` bodies column by column must give exactly MLflow's DataFrame, or step aside for MLflow's parser."
from __future__ import annotations

import copy
import random

import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server import infer_and_parse_data
from mlflow.types import ColSpec, Schema

from skewfree.serving.codec import split_by_columns

SCHEMA = Schema([ColSpec("string", "series_id"), ColSpec("datetime", "date"), ColSpec("double", "OT"), ColSpec("float", "load")])

# values a client might send in each column: the plain kind first, then what MLflow's cast may or may not accept
NUMBERS = [1.5, -0.25, 3, 0, 1e308, 5e-324, 2**53 + 1, 2**70, True, None, "2.5", "x", [1.0], {"a": 1}]
DATES = ["2016-07-01 00:00:00", "2016-07-01T01:00:00", "2016-07-01", "2016-07-01 02:00:00+00:00", "07/01/2016", "yesterday", 3, None,
         "2016-02-30 00:00:00", "2016-02-29 23:59:59", "1900-01-01 00:00:00", "2099-12-31 23:59:59", "2016-7-1 00:00:00",
         "2016-07-01 00:00:00.5", "2016-07-01 24:00:00", "1899-12-31 23:00:00", "2100-01-01 00:00:00", "2016-13-01 00:00:00",
         "2016-00-10 00:00:00", "2016-07-00 00:00:00", "2016-07-32 00:00:00", "2016-07-01 23:60:00", "2016-07-01 23:00:60",
         "2016/07/01 00:00:00", "2016-07-01 00-00-00", "2016-07-01 0a:00:00", " 2016-07-01 00:00", "2016-07-01 00:00:00 ",
         "\uff12016-07-01 00:00:00", "2016-07-0100:00:00"]
IDS = ["ETTh1", "série-2", "", "3", 3, None, True]


def _request(rng: random.Random) -> dict:
    "A `dataframe_split` request, plain most of the time, with one or more of the ways a client can get it wrong."
    n = rng.randint(1, 6)
    columns = ["series_id", "date", "OT", "load"]
    rows = [[rng.choice(IDS[:2]), f"2016-07-01 {h:02d}:00:00", rng.uniform(-50, 50), rng.uniform(0, 5)] for h in range(n)]
    for _ in range(rng.choice([0, 0, 1, 2])):  # odd values
        row, col = rng.randrange(n), rng.randrange(4)
        rows[row][col] = rng.choice([IDS, DATES, NUMBERS, NUMBERS][col])
    if rng.random() < 0.3:  # one kind for a whole column: columns that read as plain but are not the row-built frame's kind
        col = rng.randrange(4)
        value = rng.choice([IDS, DATES, NUMBERS, NUMBERS][col])
        for row in rows: row[col] = copy.deepcopy(value)
    if rng.random() < 0.3:
        order = rng.sample(range(4), 4)
        columns, rows = [columns[i] for i in order], [[row[i] for i in order] for row in rows]
    split: dict = {"columns": columns, "data": rows}
    shape = rng.random()
    if shape < 0.05: split["columns"] = columns[:-1]; split["data"] = [row[:-1] for row in rows]  # noqa: E702
    elif shape < 0.15:  # a column the schema does not name, of any kind: MLflow's enforcement leaves it out, so may we
        extra = rng.choice([IDS, DATES, NUMBERS])
        split["columns"] = [*columns, "extra"]; split["data"] = [[*row, copy.deepcopy(rng.choice(extra))] for row in rows]  # noqa: E702
    elif shape < 0.18: split["index"] = list(range(n))
    elif shape < 0.21: split["data"] = []
    elif shape < 0.24: split["data"][0] = split["data"][0][:-1]
    return {"dataframe_split": split}


@pytest.mark.parametrize("seed", range(4))
def test_column_reading_is_mlflows_reading_or_steps_aside(seed):
    rng, plain, stepped_aside = random.Random(seed), 0, 0
    for _ in range(250):
        request = _request(rng)
        mine = split_by_columns(copy.deepcopy(request), SCHEMA)
        try: theirs = infer_and_parse_data(copy.deepcopy(request), SCHEMA)
        except Exception as e:  # MLflow refuses it: we must not have read it
            assert mine is None, f"read a body MLflow refuses ({e}): {request}"
            stepped_aside += 1
            continue
        if mine is None: stepped_aside += 1; continue  # noqa: E702
        # what reaches the model: the schema's columns (MLflow's enforcement leaves any other out)
        pd.testing.assert_frame_equal(mine, theirs[[c for c in theirs.columns if c in SCHEMA.input_names()]], check_exact=True, obj=str(request)[:300])
        plain += 1
    assert plain > 50 and stepped_aside > 20  # both paths exercised


def test_written_times_is_the_written_form_exactly():
    "The vectorised check accepts exactly the texts this pattern (pandas' written form, years 1900–2099) matches, alone or in a column."
    import re

    from skewfree.serving.codec import _written_times
    pattern = re.compile(r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]")
    texts = [d for d in DATES if isinstance(d, str)] + [f"20{y:02d}-{m:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"
                                                         for y, m, d, h, mi, s in [(99, 12, 31, 23, 59, 59), (0, 1, 1, 0, 0, 0), (16, 2, 30, 12, 30, 30)]]
    for text in texts:
        plain = bool(pattern.fullmatch(text))
        assert (_written_times((text,)) is not None) == plain, text
        assert _written_times(("2016-07-01 00:00:00", text)) == (f"2016-07-01 00:00:00{text}".encode() if plain else None), text
    # texts that join into whole 19-character times without each being one
    assert _written_times(("2016-07-01 00:00:0", "02016-07-01 00:00:00")) is None
    assert _written_times(("2016-07-01 00:00:é0",)) is None and _written_times(()) is None


@pytest.mark.parametrize("params, field", [({"quantiles": 0.1}, "params.quantiles"), ({"quantiles": "0.1"}, "params.quantiles"),
                                           ({"quantiles": [[0.1]]}, "params.quantiles"), ({"horizon": "soon"}, "params.horizon")])
def test_a_param_mlflow_refuses_is_named_as_the_field(params, field):
    # MLflow words a wrong type and a wrong shape differently; the answer names the param either way, never "input"
    from mlflow.exceptions import MlflowException
    from mlflow.models.utils import _enforce_params_schema
    from mlflow.types.schema import ParamSchema, ParamSpec

    from skewfree.artifact import mlflow_field
    schema = ParamSchema([ParamSpec("horizon", "long", 24), ParamSpec("quantiles", "double", [0.1, 0.9], shape=(-1,))])
    with pytest.raises(MlflowException) as refused:
        _enforce_params_schema(params, schema)
    assert mlflow_field(refused.value) == field
