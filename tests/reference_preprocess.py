"""The preprocessor as it was before the columnar rewrite (skewfree 69a1c2d), frozen: the oracle the vectorized steps are tested against."""

# Not generated, not imported by the library: a copy kept unchanged, so that tests can compare the new steps with it.
# Changed only where the specification moved, with the library: a new series is held to the model's frequency (its gaps
# refused or reindexed like a known series'), where it once had to bring 3 regular rows.

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from darts import TimeSeries

from skewfree.core import InputError

__all__ = ['SCALERS', 'CALENDAR', 'SINGLE_SERIES', 'MISSING_POLICIES', 'GAP_POLICIES', 'UNKNOWN_POLICIES', 'SeriesBatch',
           'band_column', 'Preprocessor']

@dataclass
class SeriesBatch:
    "Model-ready series, one entry per series id, and the report of what was repaired to make them."
    ids: list[str]
    target: list[TimeSeries]
    past_covariates: list[TimeSeries]|None
    future_covariates: list[TimeSeries]|None
    target_scale: list[tuple[float, float]]  # (center, scale) used for each series' target
    report: dict[str, dict[str, int]] = field(default_factory=dict)  # series → {what was repaired: count}

    def subset(self, positions:Sequence[int]) -> SeriesBatch:
        "The series at `positions`, in that order."
        def pick(xs): return None if xs is None else [xs[i] for i in positions]
        return SeriesBatch([self.ids[i] for i in positions], pick(self.target), pick(self.past_covariates),  # type: ignore[arg-type]
                           pick(self.future_covariates), pick(self.target_scale),  # type: ignore[arg-type]
                           {self.ids[i]: self.report[self.ids[i]] for i in positions if self.ids[i] in self.report})

    @classmethod
    def concat(cls, batches:Sequence[SeriesBatch]) -> SeriesBatch:
        "All the series of `batches` as one batch, in order, for one model call (ids may repeat across requests)."
        def join(parts): return None if any(p is None for p in parts) else [s for p in parts for s in p]
        return cls([i for b in batches for i in b.ids], join([b.target for b in batches]), join([b.past_covariates for b in batches]),
                   join([b.future_covariates for b in batches]), [s for b in batches for s in b.target_scale])

def _first_bad(mask:pd.Series) -> Any:
    "Index label of the first True in `mask`."
    return mask.index[int(np.argmax(mask.to_numpy()))]

def _parse_times(values:pd.Series, col:str, sid:str) -> pd.Series:
    "Timestamps as naive UTC datetimes, or an `InputError` naming the first one that does not parse."
    if not pd.api.types.is_datetime64_any_dtype(values):
        try: parsed = pd.to_datetime(values, errors="coerce", format="ISO8601")
        except (ValueError, TypeError):  # the first time written in another offset than the series' first
            offsets = values.astype(str).str.extract(r"(Z|[+-]\d\d:?\d\d)$", expand=False).fillna("").str.replace("Z", "+00:00")
            other = offsets != offsets.iloc[0]
            raise InputError(col, "timestamps mix time zones or formats", sid, _first_bad(other) if other.any() else None) from None
        bad = parsed.isna() & values.notna()
        if bad.any(): raise InputError(col, f"timestamp {values[_first_bad(bad)]!r} does not parse", sid, _first_bad(bad))
        values = parsed
    if values.isna().any(): raise InputError(col, "missing timestamp", sid, _first_bad(values.isna()))
    if getattr(values.dt, "tz", None) is not None: values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    # parsed in a coarser unit than nanoseconds, a time may lie beyond what pandas holds in them (the year 1)
    if getattr(values.dt, "unit", "ns") != "ns" and (beyond := (values < pd.Timestamp.min) | (values > pd.Timestamp.max)).any():
        raise InputError(col, f"timestamp {values[_first_bad(beyond)]} is outside {pd.Timestamp.min} … {pd.Timestamp.max}, "
                              "the times pandas holds", sid, _first_bad(beyond))
    return values.astype("datetime64[ns]")

def _refuse_forecast_beyond_time(sid:str, last:pd.Timestamp, freq:str, steps:int) -> None:
    "Refuse a forecast whose times, `steps` steps of `freq` after `last`, would run past the latest time pandas holds."
    try: beyond = last + steps * pd.tseries.frequencies.to_offset(freq) > pd.Timestamp.max  # a time in seconds goes further
    except (OverflowError, pd.errors.OutOfBoundsDatetime): beyond = True
    if beyond:
        raise InputError("horizon", f"{steps} steps of {freq!r} after the history's end, {last}, run past {pd.Timestamp.max}, the latest "
                                    "time pandas holds", sid)

def _parse_numbers(values:pd.Series, col:str, sid:str) -> pd.Series:
    "Float64 values (NaN where missing), or an `InputError` naming the first value that is not a number."
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        raise InputError(col, f"expected numbers, got dtype {values.dtype}", sid)
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_integer_dtype(values): parsed = values.astype("float64")
    else:
        parsed = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = parsed.isna() & values.notna()
        if bad.any(): raise InputError(col, f"value {values[_first_bad(bad)]!r} is not a number", sid, _first_bad(bad))
    infinite = pd.Series(np.isinf(parsed.to_numpy()), index=parsed.index)
    if infinite.any(): raise InputError(col, "infinite value", sid, _first_bad(infinite))
    return parsed

def _scaler_stats(values:np.ndarray, kind:str) -> tuple[float, float]:
    "(center, scale) of the non-missing `values` for scaler `kind`."
    v = values[~np.isnan(values)]
    if kind == "standard": center, scale = float(v.mean()), float(v.std())
    elif kind == "robust":
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        center, scale = float(q50), float(q75 - q25)
    else: center, scale = float(v.min()), float(v.max() - v.min())
    # a constant column — or a scale so small that scaled values would overflow float32 — scales by 1
    return center, (scale if scale > 0 and float(np.abs(v - center).max()) / scale < 1e30 else 1.0)

SCALERS = ("standard", "robust", "minmax")

def _fixed_freq(freq:str) -> str:
    "`freq`, with calendar days as 24-hour steps: pandas 3 made `D` calendar-aware, and darts divides timedeltas by it."
    offset = pd.tseries.frequencies.to_offset(freq)
    return f"{24 * offset.n}h" if isinstance(offset, pd.offsets.Day) else freq
CALENDAR = {"hour": 24, "dayofweek": 7, "day": 31, "month": 12, "dayofyear": 366}  # feature → cycle length

def _calendar(times:pd.DatetimeIndex, features:Sequence[str]) -> np.ndarray:
    "Sine/cosine encodings of the calendar `features` at `times`, two columns per feature."
    cols = []
    for name in features:
        position = getattr(times, name).to_numpy().astype(np.float64) - (1 if name in ("day", "month", "dayofyear") else 0)
        angle = 2 * np.pi * position / CALENDAR[name]
        cols += [np.sin(angle), np.cos(angle)]
    return np.column_stack(cols) if cols else np.empty((len(times), 0))

SINGLE_SERIES = "series"  # the id given to the one series of a frame without an id column

def band_column(q:float) -> str:
    "The answer's column of quantile `q`: q0.1, q0.5, ..."
    return f"q{q:g}"
MISSING_POLICIES, GAP_POLICIES, UNKNOWN_POLICIES = ("error", "interpolate", "ffill", "fitted"), ("error", "reindex"), ("error", "own_history")

def _choice(name:str, value:str, allowed:Sequence[str]) -> str:
    if value not in allowed: raise InputError(f"data.{name}", f"unknown value {value!r}; allowed: {list(allowed)}")
    return value

class Preprocessor:
    "Stateful raw → model-ready transform: learnt on training rows only, plain-data state."
    def __init__(self,
                 time_col:str="date", # timestamp column
                 target:str="OT", # the column to forecast
                 *,
                 id_col:str|None="series_id", # series id column; None for a single series
                 past_covariates:Sequence[str]=(), # columns observed only up to the forecast time
                 future_covariates:Sequence[str]=(), # planned values, supplied for the horizon rows too
                 static_covariates:Sequence[str]=(), # constant per series, numeric or categorical
                 calendar:Sequence[str]=(), # calendar features derived from timestamps: hour, dayofweek, day, month, dayofyear
                 scaler:str="standard", # standard | robust | minmax, per series and column
                 missing:str="error", # error | interpolate | ffill | fitted
                 gaps:str="error", # error | reindex
                 unknown_series:str="error", # error | own_history (scale a new series with its own window)
                 history_length:int=1, # rows of history the model needs to forecast
                ):
        self.time_col, self.target, self.id_col = time_col, target, id_col
        self.past_covariates, self.future_covariates = list(past_covariates), list(future_covariates)
        self.static_covariates = list(static_covariates)
        for name in calendar:
            if name not in CALENDAR: raise InputError("data.calendar", f"unknown calendar feature {name!r}; known: {list(CALENDAR)}")
        self.calendar = list(calendar)
        self.scaler = _choice("scaler", scaler, SCALERS)
        self.missing, self.gaps = _choice("missing", missing, MISSING_POLICIES), _choice("gaps", gaps, GAP_POLICIES)
        self.unknown_series, self.history_length = _choice("unknown_series", unknown_series, UNKNOWN_POLICIES), int(history_length)

    @property
    def numeric(self) -> list[str]:
        "The time-varying numeric columns, target first: the ones that are scaled."
        return [self.target, *self.past_covariates, *self.future_covariates]

    @property
    def columns(self) -> list[str]:
        "The raw columns this preprocessor reads — id, time, numeric, static — and so the columns a request must carry."
        return [c for c in [self.id_col, self.time_col, *self.numeric, *self.static_covariates] if c is not None]

    @property
    def is_fitted(self) -> bool:
        "Whether `fit` has learnt a state."
        return hasattr(self, "scale_")

    def _check_fitted(self):
        if not self.is_fitted: raise RuntimeError("This Preprocessor is not fitted yet: call `fit` on training rows first.")

    def _groups(self, df:pd.DataFrame) -> list[tuple[str, Any]]:
        "(series id, positions of its rows) per series, in sorted id order, without a pandas groupby."
        if self.id_col and (no_id := df[self.id_col].isna()).any():  # it would belong to no series: its rows would vanish
            raise InputError(self.id_col, "missing series id", None, _first_bad(no_id))
        ids = df[self.id_col].astype(str).to_numpy() if self.id_col else None
        if ids is None or (ids == ids[0]).all(): return [(SINGLE_SERIES if ids is None else str(ids[0]), slice(None))]
        codes, names = pd.factorize(ids, sort=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        return [(str(names[k]), order[bounds[k]:bounds[k + 1]]) for k in range(len(names))]

    def frames(self,
               df:pd.DataFrame, # raw long rows
               ordered:bool=False, # refuse rows whose timestamps do not increase within a series (typed requests promise order)
              ) -> dict[str, pd.DataFrame]:
        "Validated raw values per series, indexed by parsed timestamp, in original units; statics unparsed."
        return {sid: frame for sid, (frame, _) in self._frames(df, ordered).items()}

    def _frames(self, df:pd.DataFrame, ordered:bool=False) -> dict[str, tuple[pd.DataFrame, pd.Index]]:
        "`frames`, each with its rows' labels in `df`: an error found later, by time, names the row as the caller counts it."
        if not isinstance(df, pd.DataFrame): raise InputError("input", f"expected a DataFrame of rows, got {type(df).__name__}")
        missing = [c for c in self.columns if c not in df.columns]
        if missing: raise InputError(missing[0], f"column is missing; the input needs columns {self.columns}")
        if len(df) == 0: raise InputError("input", "no rows")
        groups = self._groups(df)
        numbers_given = all(pd.api.types.is_float_dtype(df[c]) or pd.api.types.is_integer_dtype(df[c]) for c in self.numeric)
        numbers = np.column_stack([df[c].to_numpy(dtype=np.float64) for c in self.numeric]) if numbers_given else None
        frames, labels = {}, df.index  # an error names a row by its label here: what `_first_bad` gives while parsing, too
        for sid, pos in groups:
            times = _parse_times(df[self.time_col].iloc[pos], self.time_col, sid)
            index = pd.DatetimeIndex(times.to_numpy(), name=self.time_col)
            if not index.is_unique:
                dup = times.duplicated()
                raise InputError(self.time_col, f"duplicate timestamp {times[_first_bad(dup)]}", sid, _first_bad(dup))
            if ordered and not index.is_monotonic_increasing:
                back = times.diff() < pd.Timedelta(0)
                raise InputError(self.time_col, f"timestamps must increase: {times[_first_bad(back)]} comes after a later one", sid, _first_bad(back))
            if numbers is not None:
                values = numbers[pos]  # fast path: already numbers, only infinities to refuse
                if np.isinf(values).any():
                    r, c = np.argwhere(np.isinf(values))[0]
                    raise InputError(self.numeric[c], "infinite value", sid, times.index[r])
            else: values = np.column_stack([_parse_numbers(df[c].iloc[pos], c, sid).to_numpy() for c in self.numeric])
            frame = pd.DataFrame(values, columns=self.numeric, index=index)
            for c in self.static_covariates: frame[c] = df[c].iloc[pos].to_numpy()
            rows = labels[pos]
            if not index.is_monotonic_increasing:
                order = np.argsort(index.asi8, kind="stable")
                frame, rows = frame.iloc[order], rows.take(order)
            frames[sid] = (frame, rows)
        return frames

    def _statics(self, sid:str, frame:pd.DataFrame) -> dict[str, Any]:
        "The static values of one series, which must be constant over its rows."
        out = {}
        for c in self.static_covariates:
            values = frame[c].dropna().unique()
            if len(values) != 1: raise InputError(c, f"a static covariate must have exactly one value per series, got {len(values)}", sid)
            out[c] = values[0].item() if hasattr(values[0], "item") else values[0]
        return out

    def fit(self, df:pd.DataFrame) -> Preprocessor:
        "Learn frequency, scaling, fallback values and static encodings from the training rows `df` only."
        frames = self.frames(df)
        freq, scale, fallback, statics = {}, {}, {}, {}
        for sid, frame in frames.items():
            if len(frame) < max(3, self.history_length):
                raise InputError(self.time_col, f"needs at least {max(3, self.history_length)} rows to fit, got {len(frame)}", sid)
            inferred = pd.infer_freq(pd.DatetimeIndex(frame.index))
            if inferred is None:  # a gappy training span still has a dominant step
                steps = pd.Series(np.diff(pd.DatetimeIndex(frame.index).asi8)).mode()
                if self.gaps == "error" or steps.empty: raise InputError(self.time_col, "timestamps are not regular: no frequency can be inferred", sid)
                inferred = pd.tseries.frequencies.to_offset(pd.Timedelta(int(steps.iloc[0]))).freqstr
            freq[sid] = _fixed_freq(inferred)
            for c in self.numeric:
                if frame[c].isna().all(): raise InputError(c, "every value is missing", sid)
            scale[sid] = {c: list(_scaler_stats(frame[c].to_numpy(), self.scaler)) for c in self.numeric}
            fallback[sid] = {c: float(frame[c].mean()) for c in self.numeric}
            statics[sid] = self._statics(sid, frame)
        categorical = [c for c in self.static_covariates if any(isinstance(s[c], str) for s in statics.values())]
        self.categories_ = {c: sorted({str(s[c]) for s in statics.values()}) for c in categorical}
        numeric_static = [c for c in self.static_covariates if c not in categorical]
        self.static_scale_ = {c: list(_scaler_stats(np.array([float(s[c]) for s in statics.values()]), "standard")) for c in numeric_static}
        self.series_, self.freq_, self.scale_, self.fallback_ = sorted(frames), freq, scale, fallback
        self.calendar_ = list(self.calendar)
        self.columns_ = {"target": [self.target], "past": list(self.past_covariates),
                         "future": [f"{n}_{f}" for n in self.calendar for f in ("sin", "cos")] + list(self.future_covariates),
                         "static": list(self.static_covariates)}
        self.history_length_ = self.history_length
        return self

    def _series_state(self, sid:str, frame:pd.DataFrame) -> tuple[str, dict[str, list[float]], dict[str, float]]:
        "(frequency, scaling, fallback values) for one series: fitted, or from its own window for a new series."
        if sid in self.scale_: return self.freq_[sid], self.scale_[sid], self.fallback_[sid]
        if self.unknown_series == "error":
            raise InputError(self.id_col or "series", f"series was not seen at fit time; known: {self.series_}", sid)
        # the model's frequency (one for the panel, in these hourly tests); `_repaired` holds the series' rows to it, gaps and all
        freq = pd.Series(self.freq_).mode().iloc[0]
        for c in self.numeric:
            if frame[c].isna().all(): raise InputError(c, "every value is missing", sid)
        return (freq, {c: list(_scaler_stats(frame[c].to_numpy(), self.scaler)) for c in self.numeric},
                {c: float(frame[c].mean()) for c in self.numeric})

    def _repaired(self, sid:str, frame:pd.DataFrame, rows:pd.Index, *, freq:str, fallback:dict[str, float], report:dict[str, int],
                  end:pd.Timestamp|None=None) -> pd.DataFrame:
        "`frame` (its rows labelled `rows` in the input) on its frequency up to `end`, no gap, no missing value, every repair counted in `report`."
        if self.missing == "error":
            for c in self.numeric:
                if (holes := frame[c].isna().to_numpy()).any():
                    at = int(np.argmax(holes))
                    raise InputError(c, f"missing value at {frame.index[at]}; set data.missing to one of {list(MISSING_POLICIES[1:])} to repair",
                                     sid, rows[at])
        last = frame.index[-1] if end is None or end <= frame.index[-1] else end  # rows missing at the end are a gap too
        grid = pd.date_range(frame.index[0], last, freq=freq, name=frame.index.name)
        if len(grid) != len(frame) or not (grid == frame.index).all():
            off = ~frame.index.isin(grid)
            if off.any():
                at = int(np.argmax(off))
                raise InputError(self.time_col, f"timestamp {frame.index[at]} is off the fitted frequency {freq!r}", sid, rows[at])
            if self.gaps == "error":  # the missing time is in no row: the error names the time
                first = grid[int(np.argmax(~grid.isin(frame.index)))]
                raise InputError(self.time_col, f"gap in timestamps: {first} is missing (frequency {freq!r}); set data.gaps=reindex to repair", sid, first)
            report["reindexed_rows"] = len(grid) - len(frame)
            frame = frame.reindex(grid)
            if self.static_covariates: frame[self.static_covariates] = frame[self.static_covariates].ffill().bfill()
        else: frame = frame.set_axis(grid)  # the same timestamps, now carrying their frequency (darts then skips re-deriving it)
        for c in self.numeric:
            gaps = frame[c].isna()
            if not gaps.any(): continue
            # rows inserted by reindexing under `missing: error` are interpolated: the gap policy allowed them
            filled = frame[c].interpolate(limit_area="inside") if self.fills_from_ahead else frame[c].ffill() if self.missing == "ffill" else frame[c]
            frame[c] = filled.fillna(fallback[c])
            report[f"filled_{c}"] = int(gaps.sum())
        return frame

    @property
    def fills_from_ahead(self) -> bool:
        "Whether a repair reads a value after the hole: interpolation (also into gap rows under `missing: error`); ffill and the training mean look back."
        return self.missing not in ("ffill", "fitted")

    def origins_filled_from_ahead(self, frame:pd.DataFrame, grid:pd.DatetimeIndex) -> set[pd.Timestamp]:
        "Forecast origins on `grid` whose history, were `frame` (a series of `frames`) repaired as one span, holds a value filled from the origin or after."
        # a run of holes [s, e) is interpolated towards row e: the histories of origins s+1 … e hold part of it (a run at the end is
        # not interpolated, and one at the start has no value before it: the training mean, which looks nowhere)
        if not self.fills_from_ahead: return set()
        reached: set[pd.Timestamp] = set()
        for holes in frame[self.numeric].reindex(grid).isna().to_numpy().T:
            edges = np.diff(np.r_[0, holes.astype(np.int8), 0])
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                if 0 < s and e < len(grid): reached.update(grid[s + 1:e + 1])
        return reached

    def _refuse_beyond_float32(self, sid:str, scaled:np.ndarray, frame:pd.DataFrame, *, given:np.ndarray, rows:pd.Index, columns:Sequence[str]) -> None:
        "Refuse the first value of `frame` that is finite but not once scaled to float32, naming the input row (`given`: its position, -1 if inserted)."
        bad = ~np.isfinite(scaled)
        in_given = bad & (given >= 0)[:, None]  # a row a gap policy inserted only took its value from a given one: blame that
        r, c = np.argwhere(in_given if in_given.any() else bad)[0]
        raise InputError(columns[c], f"value {float(frame[columns[c]].iloc[r])!r} is beyond the range the model computes in (float32, after scaling)",
                         sid, rows[given[r]] if given[r] >= 0 else frame.index[r])

    def _static_values(self, sid:str, frame:pd.DataFrame) -> pd.DataFrame|None:
        "Encoded static covariates of one series as darts expects them: one row, numeric."
        if not self.static_covariates: return None
        raw, row = self._statics(sid, frame), {}
        for c in self.static_covariates:
            if c in self.categories_:
                if str(raw[c]) not in self.categories_[c]:
                    raise InputError(c, f"category {raw[c]!r} was not seen at fit time; known: {self.categories_[c]}", sid)
                row[c] = float(self.categories_[c].index(str(raw[c])))
            else:
                center, scale = self.static_scale_[c]
                try: value = float(raw[c])
                except (TypeError, ValueError): raise InputError(c, f"{raw[c]!r} is not a number", sid) from None
                row[c] = (value - center) / scale
        return pd.DataFrame([row])

    def transform(self,
                  df:pd.DataFrame, # raw long rows
                  horizon:int=0, # when forecasting: steps of future covariates to build beyond the last observed target
                  ordered:bool=False, # refuse timestamps that do not increase within a series
                  history_rows:Mapping[str, int]|None=None, # per series id: how many of its rows are history, the rest planned
                  history_end:Mapping[str, pd.Timestamp]|None=None, # per series id: its history's last step, where its last rows are missing
                 ) -> SeriesBatch:
        "Raw long rows → repaired, scaled float32 darts series per series id, with a repair report."
        self._check_fitted()
        ids, target, past, future, scales, report = [], [], [], [], [], {}
        has_future = bool(self.columns_["future"])
        for sid, (raw, rows) in self._frames(df, ordered).items():
            freq, scale, fallback = self._series_state(sid, raw)
            observed = np.flatnonzero(raw[self.target].notna().to_numpy())
            if len(observed) == 0: raise InputError(self.target, "every value is missing", sid)
            # when forecasting with planned covariates, rows after the history carry the horizon's plan: where the history ends
            # is told by the caller who knows it (a typed request), else it is the last observed target (MLflow's rows)
            cut = len(raw) if not (horizon and self.future_covariates) else history_rows[sid] if history_rows else observed[-1] + 1
            # counted on the rows given, not after repair: rows a gap policy inserts are made up, not history
            if cut < self.history_length_:
                raise InputError(self.time_col, f"needs at least {self.history_length_} rows of history, got {cut}", sid)
            repairs: dict[str, int] = {}
            end = history_end.get(sid) if history_end else None
            hist = self._repaired(sid, raw.iloc[:cut], rows[:cut], freq=freq, fallback=fallback, report=repairs, end=end)
            if horizon: _refuse_forecast_beyond_time(sid, hist.index[-1], freq, horizon)
            stats = np.array([scale[c] for c in self.numeric])
            values = ((hist[self.numeric].to_numpy() - stats[:, 0]) / stats[:, 1]).astype(np.float32)
            if not np.isfinite(values).all():  # finite as given, beyond float32 once scaled: the model would answer NaN
                self._refuse_beyond_float32(sid, values, hist, given=raw.index.get_indexer(hist.index), rows=rows, columns=self.numeric)
            n_past = 1 + len(self.past_covariates)
            ts = TimeSeries.from_times_and_values(hist.index, values[:, :1], columns=[self.target], freq=freq)
            statics = self._static_values(sid, raw)
            target.append(ts.with_static_covariates(statics) if statics is not None else ts)
            if self.past_covariates:
                past.append(TimeSeries.from_times_and_values(hist.index, values[:, 1:n_past], columns=self.past_covariates, freq=freq))
            if has_future:
                future.append(self._future(sid, raw.iloc[cut:], rows[cut:], hist, hist_values=values[:, n_past:], freq=freq, stats=stats[n_past:],
                                           horizon=horizon))
            ids.append(sid); scales.append((float(stats[0, 0]), float(stats[0, 1])))
            if repairs: report[sid] = repairs
        return SeriesBatch(ids, target, past if self.past_covariates else None, future if has_future else None, scales, report)

    def _future(self, sid:str, plan:pd.DataFrame, plan_rows:pd.Index, hist:pd.DataFrame, *, hist_values:np.ndarray, freq:str,
                stats:np.ndarray, horizon:int) -> TimeSeries:
        "Calendar features and planned covariates (the `plan` rows, labelled `plan_rows` in the input) over the history and `horizon` steps beyond it."
        times = pd.date_range(hist.index[0], periods=len(hist) + horizon, freq=freq)
        planned = hist_values
        if self.future_covariates and horizon:
            expected, given = times[len(hist):], plan.index[:horizon]
            if len(off := np.flatnonzero(given != expected[:len(given)])):  # the rows are there, but not on the steps that follow
                raise InputError(self.future_covariates[0], f"future covariates must cover the horizon on frequency {freq!r}: planned row "
                                 f"{off[0] + 1} is at {given[off[0]]}, expected {expected[off[0]]}", sid, plan_rows[off[0]])
            if len(given) < horizon:
                raise InputError(self.future_covariates[0], f"future covariates must cover the horizon: {horizon} rows on frequency "
                                 f"{freq!r} after the history, got {len(plan)}", sid)
            ahead = plan.iloc[:horizon][self.future_covariates]
            if ahead.isna().to_numpy().any():
                r, c = np.argwhere(ahead.isna().to_numpy())[0]
                raise InputError(self.future_covariates[c], f"missing planned value in the horizon at {ahead.index[r]}", sid, plan_rows[r])
            scaled_plan = ((ahead.to_numpy() - stats[:, 0]) / stats[:, 1]).astype(np.float32)
            if not np.isfinite(scaled_plan).all():
                self._refuse_beyond_float32(sid, scaled_plan, ahead, given=np.arange(len(ahead)), rows=plan_rows, columns=self.future_covariates)
            planned = np.vstack([hist_values, scaled_plan])
        calendar = _calendar(times, self.calendar_).astype(np.float32)
        values = np.hstack([calendar, planned]) if self.future_covariates else calendar
        return TimeSeries.from_times_and_values(times, values, columns=self.columns_["future"], freq=freq)

    def inverse_transform(self,
                          forecasts:Sequence[TimeSeries], # model output in scaled units, one per series
                          batch:SeriesBatch, # the batch the forecasts were made from: ids and target scaling
                          quantiles:Sequence[float]=(), # quantile columns to add (probabilistic forecasts)
                         ) -> pd.DataFrame:
        "Model output → long frame `id, time, forecast[, q…]` in original units."
        self._check_fitted()
        parts = []
        for sid, (center, scale), ts in zip(batch.ids, batch.target_scale, forecasts):
            part = {self.id_col or "series_id": sid, self.time_col: ts.time_index}
            named = {float(m.group(1)): c for c in ts.components if (m := re.search(r"_q([0-9.]+)$", str(c)))}
            if named:  # quantile components, e.g. OT_q0.10, from `predict_likelihood_parameters=True`
                levels = {q: ts[named[q]].values(copy=False)[:, 0].astype(np.float64) * scale + center for q in sorted(named)}
                part["forecast"] = levels[0.5] if 0.5 in levels else np.mean(list(levels.values()), axis=0)
                part.update({band_column(q): v for q, v in levels.items() if not quantiles or q in quantiles})
            else:
                # a stochastic forecast is summarised by its median; quantiles come from the same samples
                point = ts.quantile(0.5) if ts.is_stochastic else ts
                part["forecast"] = point.values(copy=False)[:, 0].astype(np.float64) * scale + center
                for q in quantiles if ts.is_stochastic else ():
                    part[band_column(q)] = ts.quantile(q).values(copy=False)[:, 0].astype(np.float64) * scale + center
            parts.append(part)
        return self._joined(parts)

    def _joined(self, parts:list[dict[str, Any]]) -> pd.DataFrame:
        "Forecast parts (an id, times, value columns) as one frame: a backtest hands over thousands, so joined column by column."
        if len(parts) < 2 or any(list(p) != list(parts[0]) for p in parts):  # one part, or parts with different bands: frame by frame
            return pd.concat([pd.DataFrame(p) for p in parts], ignore_index=True)
        id_name, times = self.id_col or "series_id", [p[self.time_col] for p in parts]
        joined = {id_name: np.repeat(np.array([p[id_name] for p in parts], dtype=object), [len(t) for t in times]),
                  self.time_col: times[0].append(times[1:])}
        joined |= {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k not in joined}
        return pd.DataFrame(joined)

    def standardise_target(self, values:np.ndarray, batch:SeriesBatch, position:int) -> np.ndarray:
        "Original-unit target values of the series at `position` in `batch`, on the standardised scale (float64), for scoring."
        center, scale = batch.target_scale[position]
        return (np.asarray(values, dtype=np.float64) - center) / scale

    def to_dict(self) -> dict[str, Any]:
        "Configuration and fitted state as plain data, readable by a person and stable to hash."
        self._check_fitted()
        config = {k: getattr(self, k) for k in ("time_col", "target", "id_col", "past_covariates", "future_covariates", "static_covariates",
                                                "calendar", "scaler", "missing", "gaps", "unknown_series", "history_length")}
        state = {k: getattr(self, k) for k in ("series_", "freq_", "scale_", "fallback_", "categories_", "static_scale_",
                                               "calendar_", "columns_", "history_length_")}
        return {"config": config, "state": state}

    @classmethod
    def from_dict(cls, d:dict[str, Any]) -> Preprocessor:
        "A fitted preprocessor rebuilt from `to_dict` output, with no refitting."
        pre = cls(**d["config"])
        for k, v in d["state"].items(): setattr(pre, k, v)
        return pre

    def state_hash(self) -> str:
        "SHA-256 of the canonical JSON of `to_dict()`: which state produced a forecast."
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_config(cls, data:Any, roles:Sequence[str], history_length:int) -> Preprocessor:
        "A preprocessor for a data config (`params/data/*.yaml`), feeding the model only the covariate `roles` it uses."
        cov = data.get("covariates", {})
        for feature in data.get("calendar", []): _choice("calendar", feature, list(CALENDAR))  # checked even where this model uses none
        return cls(time_col=data.time_col, target=data.target, id_col=data.get("id_col"),
                   past_covariates=list(cov.get("past", [])) if "past" in roles else [],
                   future_covariates=list(cov.get("future", [])) if "future" in roles else [],
                   static_covariates=list(cov.get("static", [])) if "static" in roles else [],
                   calendar=list(data.get("calendar", [])) if "future" in roles else [],
                   scaler=data.get("scaler", "standard"), missing=data.get("missing", "error"), gaps=data.get("gaps", "error"),
                   unknown_series=data.get("unknown_series", "error"), history_length=history_length)
