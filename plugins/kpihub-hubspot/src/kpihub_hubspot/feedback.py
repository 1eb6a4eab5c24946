"""HubSpot feedback submissions (NPS, CSAT, CES and custom surveys) -> canonical ``survey_responses``.

The object is read like the other CRM objects, through ``POST /crm/v3/objects/feedback_submissions/search``
by ``hs_lastmodifieddate`` (HubSpot's OpenAPI spec, HubSpot/HubSpot-public-api-spec-collection
``PublicApiSpecs/CRM/Feedback Submissions/Rollouts/424/v3/feedbackSubmissions.json``: read-only list, read,
batch read and search; scope ``crm.objects.feedback_submissions.read``; Service Hub Professional).

One submission is one answer to one survey, so it is one canonical row: ``response_id`` is the
submission id and ``item`` comes from :attr:`~kpihub_hubspot.source.HubSpotSettings.feedback_items`,
keyed by ``hs_survey_type`` (or ``<type>:<hs_survey_id>``, which wins). The score is ``hs_value`` (a
string, as every HubSpot property), on the item's scale. HubSpot's own sentiment groups fix the
scales of the standard surveys (knowledge.hubspot.com/customer-feedback/feedback-submission-properties):
CSAT 0 / 1 / 2 (detractor, passive, promoter), CES 1–7 (1–3, 4–5, 6–7), NPS 0–10 (0–6, 7–8, 9–10).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, model_validator

from kpihub import NormalizationError

#: The properties the stream asks for. ``hs_value``, ``hs_survey_*``, ``hs_response_group`` and
#: ``hs_content`` are in HubSpot's example submission (developers.hubspot.com/docs/guides/api/crm/
#: objects/feedback-submissions, as mirrored in ballerina-platform's HubSpot feedback connector
#: tests); ``hs_submission_timestamp`` and ``hs_contact_id`` are seen in public warehouse models
#: only, so both may be absent: HubSpot leaves out a property an object does not have ("If any of the
#: specified properties are not present on the requested object(s), they will be ignored", the
#: spec's ``properties`` parameter), which reads as null.
FEEDBACK_PROPERTIES = [
    "hs_object_id",
    "hs_survey_id",
    "hs_survey_name",
    "hs_survey_type",
    "hs_survey_channel",
    "hs_value",
    "hs_response_group",
    "hs_content",
    "hs_contact_id",
    "hs_submission_timestamp",
    "hs_createdate",
    "hs_lastmodifieddate",
]
#: A score as HubSpot writes it: an integer or decimal string.
_NUMBER = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"


class FeedbackItem(BaseModel):
    """The canonical item a survey's answers are, and the scale they are on."""

    item: str
    scale_min: float
    scale_max: float

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackItem:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} must be below scale_max {self.scale_max}")
        return self


#: HubSpot's standard surveys as the survey KPIs read them (``nps``, ``csat``) and CES.
DEFAULT_ITEMS: dict[str, FeedbackItem] = {
    "NPS": FeedbackItem(item="nps", scale_min=0, scale_max=10),
    "CSAT": FeedbackItem(item="csat", scale_min=0, scale_max=2),
    "CES": FeedbackItem(item="ces", scale_min=1, scale_max=7),
}
UNMAPPED = "feedback submissions of a survey type feedback_items does not map: kept under the type, no scale"


def survey_responses(
    batch: pa.RecordBatch, items: Mapping[str, FeedbackItem], *, stream: str = "feedback_submissions"
) -> tuple[pa.RecordBatch, int]:
    """``survey_responses`` rows for a batch of submissions, and how many had an unmapped survey type.

    A mapped submission whose ``hs_value`` is not a number, or lies outside its item's scale, fails
    naming the submission: a scale set wrong would otherwise skew every score without a trace.
    """
    kind = pc.utf8_upper(batch.column("hs_survey_type"))
    by_survey = pc.binary_join_element_wise(kind, batch.column("hs_survey_id"), ":")
    keys = list(items)
    idx = pc.coalesce(
        pc.index_in(by_survey, value_set=pa.array(keys, pa.string())),
        pc.index_in(kind, value_set=pa.array(keys, pa.string())),
    )
    mapped = pc.is_valid(idx)
    spec = [items[k] for k in keys]
    item = pc.coalesce(pc.take(pa.array([s.item for s in spec], pa.string()), idx), pc.utf8_lower(kind))
    low = pc.take(pa.array([s.scale_min for s in spec], pa.float64()), idx)
    high = pc.take(pa.array([s.scale_max for s in spec], pa.float64()), idx)
    value = batch.column("hs_value")
    numeric = pc.fill_null(pc.match_substring_regex(value, _NUMBER), False)
    _refuse(batch, pc.and_(mapped, pc.and_(pc.is_valid(value), pc.invert(numeric))), stream, "is not a number")
    score = pc.cast(pc.if_else(numeric, value, pa.scalar(None, pa.string())), pa.float64())
    outside = pc.fill_null(pc.or_(pc.less(score, low), pc.greater(score, high)), False)
    _refuse(batch, outside, stream, "lies outside the item's scale", low=low, high=high)
    canonical = pa.RecordBatch.from_pydict(
        {
            "response_id": batch.column("id"),
            "item": item,
            "responded_at": pc.coalesce(
                batch.column("hs_submission_timestamp"), batch.column("hs_createdate"), batch.column("createdAt")
            ),
            "respondent_id": batch.column("hs_contact_id"),
            "score": score,
            "scale_min": low,
            "scale_max": high,
        }
    )
    return canonical, pc.sum(pc.invert(mapped).cast(pa.int64())).as_py() or 0


def _refuse(
    batch: pa.RecordBatch,
    bad: pa.Array,
    stream: str,
    why: str,
    *,
    low: pa.Array | None = None,
    high: pa.Array | None = None,
) -> None:
    if not pc.any(bad).as_py():
        return
    i = pc.index(bad, True).as_py()
    record = batch.column("id")[i].as_py()
    kind, value = batch.column("hs_survey_type")[i].as_py(), batch.column("hs_value")[i].as_py()
    scale = f" {low[i].as_py():g}..{high[i].as_py():g}" if low is not None and high is not None else ""
    raise NormalizationError(
        f"stream {stream!r}, record id={record!r}, field 'hs_value': {value!r} of a {kind} survey {why}{scale}; "
        "set the survey type's item and scale in feedback_items in [sources.<id>]",
        stream=stream,
        field="hs_value",
        record_key={"id": record},
    )
