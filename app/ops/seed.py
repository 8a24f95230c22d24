"""Deterministic synthetic data for load tests and demos (``medrec seed``, ``medrec dev``).

Everything (ids, names, timestamps) is drawn from one ``random.Random`` seeded with the tenant id
and the seed, and every instant is placed relative to a fixed reference instant rather than the
clock, so two runs with the same arguments write identical rows in the same order.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, NamedTuple, TypeVar

import orjson
from sqlalchemy import delete, exists, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from models import (
    Attachment,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
    RecordStatusEvent,
    table_of,
)
from models.enums import AttachmentStatus, DiagnosisType, RecordStatus, RecordType, Sex

# Fixed rather than now(): timestamps, and so every ordering by them, must not depend on the day
# the seed runs. All generated instants lie before it.
REFERENCE_INSTANT: Final = datetime(2026, 11, 1, tzinfo=UTC)
# Patients made and written at a time (each with 5-15 records and the rows under them): what
# bounds the memory of a seed of any size, about 200 MB. At 40,000 patients batches of 250 were
# 20% slower, and of 10,000 no faster.
BATCH_PATIENTS: Final = 2_000
PATIENTS_PER_PROVIDER: Final = 20
MAX_PATIENTS: Final = 1_000_000

_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_YEAR = timedelta(days=365)
_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# The bits uuid.UUID(version=4) overwrites: the variant (RFC 4122) and the version.
_V4_CLEAR = ~(0xC000 << 48 | 0xF000 << 64)
_V4_SET = 0x8000 << 48 | 4 << 76
_T = TypeVar("_T")
# How long before the reference instant patients were created; everything under them is later.
_OLDEST_PATIENT = timedelta(days=3.5 * 365)
_NEWEST_PATIENT = timedelta(days=100)


class SeedError(Exception):
    """The seed cannot run as asked (existing data without ``replace``, invalid arguments)."""


@dataclass(frozen=True)
class SeedSummary:
    tenant_id: str
    providers: int
    patients: int
    records: int
    diagnoses: int
    attachments: int
    status_events: int


def npi_check_digit(first_nine: str) -> int:
    """Luhn check digit of an NPI: computed over the card-issuer prefix 80840 and the 9 digits."""
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError("an NPI starts with exactly 9 digits")
    total = 0
    # Walking from the right, the digit next to the (absent) check digit is doubled.
    for position, char in enumerate(reversed("80840" + first_nine)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(npi: str) -> bool:
    return len(npi) == 10 and npi.isdigit() and npi_check_digit(npi[:9]) == int(npi[9])


def synthetic_provider_subject(provider_id: uuid.UUID) -> str:
    """The Cognito subject a seeded provider is linked to (unique across tenants via its id)."""
    return f"seed-provider-{provider_id}"


def synthetic_admin_subject(tenant_id: str) -> str:
    """Who marked seeded records ENTERED_IN_ERROR (admins have no row of their own)."""
    return f"seed-admin-{tenant_id}"


def attachment_storage_key(
    tenant_id: str,
    visit_date: datetime,
    record_id: uuid.UUID,
    attachment_id: uuid.UUID,
    file_name: str,
) -> str:
    visit = visit_date.astimezone(UTC)
    return (
        f"{tenant_id}/medical-records/{visit.year:04d}/{visit.month:02d}/"
        f"{record_id}/{attachment_id}/{file_name}"
    )


# --- Built-in vocabularies ------------------------------------------------------------------------

_FEMALE_NAMES: Final = (
    "Olivia", "Emma", "Ava", "Sophia", "Isabella", "Mia", "Amelia", "Harper", "Evelyn", "Abigail",
    "Emily", "Elizabeth", "Sofia", "Avery", "Ella", "Grace", "Chloe", "Victoria", "Nora", "Hannah",
    "Maria", "Fatima", "Aisha", "Mei", "Priya", "Ana", "Sarah", "Laura", "Margaret", "Linda",
)  # fmt: skip
_MALE_NAMES: Final = (
    "Liam", "Noah", "Oliver", "Elijah", "James", "William", "Benjamin", "Lucas", "Henry", "Michael",
    "Ethan", "Daniel", "Jacob", "Samuel", "Joseph", "John", "David", "Mateo", "Owen", "Thomas",
    "Carlos", "Ahmed", "Wei", "Raj", "Kenji", "Omar", "Robert", "Richard", "Paul", "George",
)  # fmt: skip
_FAMILY_NAMES: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Patel", "Kim", "Chen", "Singh", "Okafor", "O'Brien", "Novak",
    "Kowalski", "Haddad", "Tanaka",
)  # fmt: skip
_SPECIALTIES: Final = (
    "Family Medicine", "Family Medicine", "Internal Medicine", "Internal Medicine", "Cardiology",
    "Endocrinology", "Pulmonology", "Orthopedic Surgery", "Dermatology", "Neurology",
    "Gastroenterology", "Psychiatry", "Obstetrics and Gynecology", "Radiology",
    "Emergency Medicine", "Rheumatology", "Nephrology",
)  # fmt: skip
_AREA_CODES: Final = ("212", "312", "415", "503", "512", "617", "206", "303", "404", "713")


class _Medication(NamedTuple):
    name: str
    dosage: str
    frequency: str
    duration_days: int | None


class _Condition(NamedTuple):
    code: str
    description: str
    chronic: bool
    complaint: str
    medications: tuple[_Medication, ...]


def _med(name: str, dosage: str, frequency: str, days: int | None = None) -> _Medication:
    return _Medication(name, dosage, frequency, days)


_CONDITIONS: Final = (
    _Condition("E11.9", "Type 2 diabetes mellitus without complications", True,
               "Elevated blood sugar readings",
               (_med("Metformin", "500 mg", "twice daily with meals", 90),
                _med("Empagliflozin", "10 mg", "once daily", 90))),
    _Condition("I10", "Essential (primary) hypertension", True, "Elevated blood pressure",
               (_med("Lisinopril", "10 mg", "once daily", 90),
                _med("Amlodipine", "5 mg", "once daily", 90),
                _med("Losartan", "50 mg", "once daily", 90))),
    _Condition("J45.909", "Unspecified asthma, uncomplicated", True,
               "Wheezing and shortness of breath",
               (_med("Albuterol HFA", "90 mcg, 2 puffs", "every 4-6 hours as needed", 30),
                _med("Fluticasone HFA", "110 mcg, 2 puffs", "twice daily", 90))),
    _Condition("M54.50", "Low back pain, unspecified", False, "Lower back pain",
               (_med("Naproxen", "500 mg", "twice daily with food", 10),
                _med("Cyclobenzaprine", "5 mg", "at bedtime as needed", 7))),
    _Condition("E78.5", "Hyperlipidemia, unspecified", True, "Abnormal cholesterol results",
               (_med("Atorvastatin", "20 mg", "once daily at bedtime", 90),
                _med("Rosuvastatin", "10 mg", "once daily", 90))),
    _Condition("J06.9", "Acute upper respiratory infection, unspecified", False,
               "Sore throat, cough and nasal congestion",
               (_med("Benzonatate", "100 mg", "three times daily as needed", 7),)),
    _Condition("N39.0", "Urinary tract infection, site not specified", False,
               "Burning on urination",
               (_med("Nitrofurantoin", "100 mg", "twice daily", 5),)),
    _Condition("F41.1", "Generalized anxiety disorder", True, "Persistent worry and poor sleep",
               (_med("Sertraline", "50 mg", "once daily", 90),)),
    _Condition("F32.9", "Major depressive disorder, single episode, unspecified", True,
               "Low mood and loss of interest",
               (_med("Escitalopram", "10 mg", "once daily", 90),)),
    _Condition("K21.9", "Gastro-esophageal reflux disease without esophagitis", True,
               "Heartburn after meals",
               (_med("Omeprazole", "20 mg", "once daily before breakfast", 60),)),
    _Condition("E03.9", "Hypothyroidism, unspecified", True, "Fatigue and cold intolerance",
               (_med("Levothyroxine", "50 mcg", "once daily on an empty stomach", 90),)),
    _Condition("I48.91", "Unspecified atrial fibrillation", True, "Palpitations",
               (_med("Apixaban", "5 mg", "twice daily", 90),
                _med("Metoprolol succinate", "50 mg", "once daily", 90))),
    _Condition("I25.10",
               "Atherosclerotic heart disease of native coronary artery without angina pectoris",
               True, "Chest tightness on exertion",
               (_med("Aspirin", "81 mg", "once daily", 90),)),
    _Condition("J44.9", "Chronic obstructive pulmonary disease, unspecified", True,
               "Chronic cough and breathlessness",
               (_med("Tiotropium", "18 mcg inhaled", "once daily", 90),)),
    _Condition("N18.30", "Chronic kidney disease, stage 3 unspecified", True,
               "Abnormal kidney function results", ()),
    _Condition("M17.11", "Unilateral primary osteoarthritis, right knee", True, "Right knee pain",
               (_med("Acetaminophen", "650 mg", "every 8 hours as needed", 30),)),
    _Condition("G43.909",
               "Migraine, unspecified, not intractable, without status migrainosus", True,
               "Recurrent headaches",
               (_med("Sumatriptan", "50 mg", "at onset, may repeat once after 2 hours", 30),)),
    _Condition("E66.9", "Obesity, unspecified", True, "Weight management", ()),
    _Condition("D64.9", "Anemia, unspecified", True, "Fatigue",
               (_med("Ferrous sulfate", "325 mg", "once daily", 90),)),
    _Condition("E55.9", "Vitamin D deficiency, unspecified", True, "Low vitamin D level",
               (_med("Cholecalciferol", "2000 IU", "once daily", 90),)),
    _Condition("G47.33", "Obstructive sleep apnea (adult) (pediatric)", True,
               "Snoring and daytime sleepiness", ()),
    _Condition("R51.9", "Headache, unspecified", False, "Headache",
               (_med("Ibuprofen", "400 mg", "every 6 hours as needed", 5),)),
    _Condition("R07.9", "Chest pain, unspecified", False, "Chest pain", ()),
    _Condition("R10.9", "Unspecified abdominal pain", False, "Abdominal pain", ()),
    _Condition("S93.401A",
               "Sprain of unspecified ligament of right ankle, initial encounter", False,
               "Twisted right ankle",
               (_med("Ibuprofen", "400 mg", "every 6 hours as needed", 7),)),
    _Condition("L03.115", "Cellulitis of right lower limb", False, "Red, swollen right leg",
               (_med("Cephalexin", "500 mg", "four times daily", 7),)),
    _Condition("J02.9", "Acute pharyngitis, unspecified", False, "Sore throat", ()),
    _Condition("J18.9", "Pneumonia, unspecified organism", False, "Fever and productive cough",
               (_med("Amoxicillin-clavulanate", "875 mg/125 mg", "twice daily", 7),)),
    _Condition("K52.9", "Noninfective gastroenteritis and colitis, unspecified", False,
               "Nausea and diarrhea", ()),
    _Condition("H10.9", "Unspecified conjunctivitis", False, "Red, itchy eyes", ()),
    _Condition("Z00.00",
               "Encounter for general adult medical examination without abnormal findings",
               False, "Annual physical examination", ()),
)  # fmt: skip
_CHRONIC: Final = tuple(c for c in _CONDITIONS if c.chronic)
_ACUTE: Final = tuple(c for c in _CONDITIONS if not c.chronic)


class _LabTest(NamedTuple):
    name: str
    unit: str | None
    low: float
    high: float
    decimals: int
    reference_range: str


_LAB_TESTS: Final = (
    _LabTest("Hemoglobin A1c", "%", 4.0, 5.6, 1, "4.0-5.6"),
    _LabTest("Glucose, fasting", "mg/dL", 70, 99, 0, "70-99"),
    _LabTest("Total cholesterol", "mg/dL", 120, 199, 0, "<200"),
    _LabTest("LDL cholesterol", "mg/dL", 40, 99, 0, "<100"),
    _LabTest("HDL cholesterol", "mg/dL", 40, 80, 0, ">40"),
    _LabTest("Triglycerides", "mg/dL", 50, 149, 0, "<150"),
    _LabTest("Creatinine", "mg/dL", 0.6, 1.3, 2, "0.60-1.30"),
    _LabTest("eGFR", "mL/min/1.73m2", 60, 120, 0, ">60"),
    _LabTest("Sodium", "mmol/L", 135, 145, 0, "135-145"),
    _LabTest("Potassium", "mmol/L", 3.5, 5.1, 1, "3.5-5.1"),
    _LabTest("TSH", "mIU/L", 0.4, 4.0, 2, "0.40-4.00"),
    _LabTest("Hemoglobin", "g/dL", 12.0, 17.5, 1, "12.0-17.5"),
    _LabTest("White blood cell count", "10^3/uL", 4.5, 11.0, 1, "4.5-11.0"),
    _LabTest("Platelet count", "10^3/uL", 150, 450, 0, "150-450"),
    _LabTest("ALT", "U/L", 7, 56, 0, "7-56"),
    _LabTest("Vitamin D, 25-hydroxy", "ng/mL", 30, 100, 0, "30-100"),
    _LabTest("C-reactive protein", "mg/L", 0.0, 9.9, 1, "<10.0"),
)

_RECORD_TYPES: Final = tuple(RecordType)
# CONSULTATION 30, FOLLOW_UP 30, LAB_RESULT 15, IMAGING 10, PROCEDURE 8, DISCHARGE_SUMMARY 7.
_RECORD_TYPE_CUM_WEIGHTS: Final = (30, 60, 75, 85, 93, 100)
_SETTLED_STATUSES: Final = (
    RecordStatus.FINALIZED,
    RecordStatus.AMENDED,
    RecordStatus.ENTERED_IN_ERROR,
)
_ATTACHMENT_STATUSES: Final = (
    AttachmentStatus.AVAILABLE,
    AttachmentStatus.PENDING_UPLOAD,
    AttachmentStatus.REJECTED,
)
_RARELY_VITALS: Final = (RecordType.LAB_RESULT, RecordType.IMAGING)
_FOLLOW_UP_TYPES: Final = (
    RecordType.CONSULTATION,
    RecordType.FOLLOW_UP,
    RecordType.DISCHARGE_SUMMARY,
)
_PLANS: Final = (
    "Continue current medications and lifestyle measures.",
    "Discussed diet, exercise and medication adherence.",
    "Return precautions reviewed; patient verbalized understanding.",
    "Labs ordered; will review results at the next visit.",
    "Referral placed to specialist for further evaluation.",
    "Symptoms improving; no change to the plan.",
)
_AMEND_REASONS: Final = (
    "Corrected medication dosage",
    "Added late laboratory results",
    "Clarified assessment and plan",
    "Corrected laterality in the examination findings",
    "Updated follow-up instructions",
)
_ERROR_REASONS: Final = (
    "Documented in the wrong patient's chart",
    "Duplicate of another record for the same encounter",
    "Entered under the wrong encounter date",
)


class _FileKind(NamedTuple):
    content_type: str
    extension: str
    min_bytes: int
    max_bytes: int


_PDF: Final = _FileKind("application/pdf", "pdf", 40_000, 3_000_000)
_PNG: Final = _FileKind("image/png", "png", 100_000, 5_000_000)
_JPEG: Final = _FileKind("image/jpeg", "jpg", 80_000, 4_000_000)
_DICOM: Final = _FileKind("application/dicom", "dcm", 500_000, 30_000_000)
_TEXT: Final = _FileKind("text/plain", "txt", 1_000, 40_000)
_ATTACHMENTS_BY_TYPE: Final[dict[RecordType, tuple[tuple[str, _FileKind], ...]]] = {
    RecordType.CONSULTATION: (("referral-letter", _PDF), ("clinical-photo", _JPEG),
                              ("intake-form", _PDF), ("patient-message", _TEXT)),
    RecordType.FOLLOW_UP: (("progress-note", _PDF), ("wound-photo", _JPEG),
                           ("home-readings", _TEXT), ("home-readings", _PNG)),
    RecordType.LAB_RESULT: (("lab-report", _PDF), ("lab-report", _TEXT)),
    RecordType.IMAGING: (("chest-xray", _DICOM), ("knee-mri", _DICOM),
                         ("ultrasound", _DICOM), ("radiology-report", _PDF),
                         ("key-image", _PNG), ("key-image", _JPEG)),
    RecordType.PROCEDURE: (("procedure-report", _PDF), ("consent-form", _PDF),
                           ("ecg-tracing", _PNG), ("intraoperative-photo", _JPEG)),
    RecordType.DISCHARGE_SUMMARY: (("discharge-summary", _PDF), ("medication-list", _TEXT)),
}  # fmt: skip


# --- Generation -----------------------------------------------------------------------------------

# The rows as COPY writes them: each field is the table's column of that name, and a column left
# out takes its default. The JSON columns hold JSON text.


class ProviderRow(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    npi: str
    given_name: str
    family_name: str
    specialty: str
    email: str
    active: bool
    cognito_sub: str
    created_at: datetime
    updated_at: datetime
    version: int


class PatientRow(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    mrn: str
    given_name: str
    family_name: str
    date_of_birth: date
    sex: Sex
    email: str | None
    phone: str | None
    primary_provider_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


class RecordRow(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    record_type: RecordType
    visit_date: datetime
    chief_complaint: str
    notes: str
    # JSON null, not SQL NULL, for a visit without vital signs: what the INSERT of None wrote.
    vital_signs: str
    prescriptions: str
    lab_results: str
    status: RecordStatus
    finalized_at: datetime | None
    follow_up_date: date | None
    created_at: datetime
    updated_at: datetime
    version: int


class DiagnosisRow(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    record_id: uuid.UUID
    patient_id: uuid.UUID
    icd10_code: str
    description: str
    type: DiagnosisType
    created_at: datetime


class AttachmentRow(NamedTuple):
    id: uuid.UUID
    tenant_id: str
    record_id: uuid.UUID
    patient_id: uuid.UUID
    file_name: str
    content_type: str
    size_bytes: int
    checksum_sha256: str
    status: AttachmentStatus
    storage_key: str
    uploaded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class StatusEventRow(NamedTuple):
    """Without ``sequence``: the database numbers the events when they are written."""

    tenant_id: str
    record_id: uuid.UUID
    patient_id: uuid.UUID
    previous_status: RecordStatus | None
    status: RecordStatus
    changed_at: datetime
    changed_by: str
    reason: str | None


@dataclass
class SeedBatch:
    """Patients with everything under them, and before them the providers (first batch only).

    ``status_events`` are in the order they were generated, not by time: ``seed_tenant`` numbers
    the tenant's events by ``changed_at`` once every batch is written.
    """

    providers: list[ProviderRow] = field(default_factory=list)
    patients: list[PatientRow] = field(default_factory=list)
    records: list[RecordRow] = field(default_factory=list)
    diagnoses: list[DiagnosisRow] = field(default_factory=list)
    attachments: list[AttachmentRow] = field(default_factory=list)
    status_events: list[StatusEventRow] = field(default_factory=list)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class _Generator:
    def __init__(self, tenant_id: str, seed: int) -> None:
        self.tenant_id = tenant_id
        # Not for secrets: a reproducible stream is the whole point here.
        self.rng = random.Random(f"medrec-seed\x00{tenant_id}\x00{seed}")  # noqa: S311
        self.admin_subject = synthetic_admin_subject(tenant_id)
        # One entry per distinct "given.family" (a few thousand at most), however many patients.
        self.emails: dict[str, int] = {}
        self.batch = SeedBatch()

    def new_id(self) -> uuid.UUID:
        # What uuid.UUID(int=..., version=4) makes of the same bits, with its version bits set here.
        return uuid.UUID(int=self.rng.getrandbits(128) & _V4_CLEAR | _V4_SET)

    def pick(self, population: Sequence[_T], cum_weights: Sequence[int]) -> _T:
        """``rng.choices(population, cum_weights=cum_weights)[0]``: the same one draw, at a
        fraction of its cost (it runs a few times for every record)."""
        point = self.rng.random() * cum_weights[-1]
        return population[bisect.bisect(cum_weights, point, 0, len(population) - 1)]

    def seconds(self, low: float, high: float) -> timedelta:
        return timedelta(seconds=self.rng.randint(int(low), int(high)))

    def later(self, instant: datetime, low: int, high: int) -> datetime:
        """A moment ``low``-``high`` seconds after ``instant``, leaving room before the reference
        instant for more steps."""
        room = int((REFERENCE_INSTANT - instant).total_seconds()) // 2
        step = self.rng.randint(low, high)
        return instant + timedelta(seconds=max(1, min(step, room)))

    def email(self, given: str, family: str, domain: str) -> str:
        local = "".join(ch for ch in f"{given}.{family}".lower() if ch.isalnum() or ch == ".")
        seen = self.emails.get(local, 0)
        self.emails[local] = seen + 1
        return f"{local}{seen + 1 if seen else ''}@{domain}"

    def take_batch(self) -> SeedBatch:
        batch, self.batch = self.batch, SeedBatch()
        return batch

    def providers(self, count: int, taken_npis: Iterable[str]) -> list[ProviderRow]:
        taken = set(taken_npis)
        rng = self.rng
        start = REFERENCE_INSTANT - 4 * _YEAR
        rows: list[ProviderRow] = []
        while len(rows) < count:
            body = str(rng.randrange(100_000_000, 300_000_000))
            npi = body + str(npi_check_digit(body))
            if npi in taken:
                continue
            taken.add(npi)
            provider_id = self.new_id()
            given = rng.choice(_FEMALE_NAMES if rng.random() < 0.5 else _MALE_NAMES)
            family = rng.choice(_FAMILY_NAMES)
            created = start + self.seconds(0, 120 * 86_400)
            rows.append(
                ProviderRow(
                    id=provider_id,
                    tenant_id=self.tenant_id,
                    npi=npi,
                    given_name=given,
                    family_name=family,
                    specialty=rng.choice(_SPECIALTIES),
                    email=self.email(given, family, "clinic.example.org"),
                    # The first provider stays active so every patient can have an active one.
                    active=not rows or rng.random() >= 0.05,
                    cognito_sub=synthetic_provider_subject(provider_id),
                    created_at=created,
                    updated_at=created,
                    version=1,
                )
            )
        return rows

    def patients(
        self, count: int, providers: Sequence[ProviderRow], batch_patients: int
    ) -> Iterator[SeedBatch]:
        """Batches of ``batch_patients`` patients (the last one may hold fewer)."""
        rng = self.rng
        active = [p for p in providers if p.active]
        mrns = rng.sample(range(10_000_000, 100_000_000), count)
        sexes = (Sex.FEMALE, Sex.MALE, Sex.OTHER, Sex.UNKNOWN)
        for mrn in mrns:
            sex = self.pick(sexes, (49, 98, 99, 100))
            if sex is Sex.FEMALE or (sex is not Sex.MALE and rng.random() < 0.5):
                given = rng.choice(_FEMALE_NAMES)
                height = rng.gauss(163, 7)
            else:
                given = rng.choice(_MALE_NAMES)
                height = rng.gauss(177, 7)
            family = rng.choice(_FAMILY_NAMES)
            patient_id = self.new_id()
            created = REFERENCE_INSTANT - self.seconds(
                _NEWEST_PATIENT.total_seconds(), _OLDEST_PATIENT.total_seconds()
            )
            updated = created if rng.random() < 0.7 else self.later(created, _DAY, 400 * _DAY)
            primary = rng.choice(active)
            # Adults only, so one set of physiological ranges fits every visit.
            birth = REFERENCE_INSTANT.date() - timedelta(days=rng.randint(22 * 365, 94 * 365))
            area = rng.choice(_AREA_CODES)
            row = PatientRow(
                id=patient_id,
                tenant_id=self.tenant_id,
                mrn=f"MRN-{mrn}",
                given_name=given,
                family_name=family,
                date_of_birth=birth,
                sex=sex,
                email=self.email(given, family, "example.com") if rng.random() < 0.8 else None,
                # 555-0100..0199 are reserved for fiction.
                phone=f"+1-{area}-555-01{rng.randrange(100):02d}" if rng.random() < 0.9 else None,
                primary_provider_id=primary.id,
                created_at=created,
                updated_at=updated,
                version=1 if updated == created else 2,
            )
            self.batch.patients.append(row)
            self.records_of(row, primary, providers, max(150.0, min(200.0, height)))
            if len(self.batch.patients) == batch_patients:
                yield self.take_batch()
        if self.batch.patients:
            yield self.take_batch()

    def records_of(
        self,
        patient: PatientRow,
        primary: ProviderRow,
        providers: Sequence[ProviderRow],
        height_cm: float,
    ) -> None:
        rng = self.rng
        count = rng.randint(5, 15)
        first_day = patient.created_at + timedelta(days=1)
        span_days = max(1, (REFERENCE_INSTANT - first_day).days - 1)
        days = sorted(rng.randrange(span_days) for _ in range(count))
        problems = rng.sample(_CHRONIC, rng.randint(0, 3))
        bmi = rng.uniform(19.0, 36.0)
        base_systolic = rng.randint(105, 150)
        for index, day in enumerate(days):
            visit_day = first_day.date() + timedelta(days=day)
            visit = datetime(
                visit_day.year, visit_day.month, visit_day.day, 8, tzinfo=UTC
            ) + timedelta(minutes=5 * rng.randrange(120))
            provider = primary if rng.random() < 0.8 else rng.choice(providers)
            draft_chance = 0.25 if index == count - 1 else 0.05
            self.record(
                patient, provider, visit, draft_chance, problems, bmi, base_systolic, height_cm
            )

    def record(
        self,
        patient: PatientRow,
        provider: ProviderRow,
        visit: datetime,
        draft_chance: float,
        problems: Sequence[_Condition],
        bmi: float,
        base_systolic: int,
        height_cm: float,
    ) -> None:
        rng = self.rng
        record_id = self.new_id()
        record_type = self.pick(_RECORD_TYPES, _RECORD_TYPE_CUM_WEIGHTS)
        created = self.later(visit, 5 * _MINUTE, 4 * _HOUR)

        if rng.random() < draft_chance:
            status = RecordStatus.DRAFT
        else:
            status = self.pick(_SETTLED_STATUSES, (80, 96, 100))

        subject = provider.cognito_sub
        record_event = functools.partial(
            StatusEventRow, tenant_id=self.tenant_id, record_id=record_id, patient_id=patient.id
        )
        events = [
            record_event(
                previous_status=None,
                status=RecordStatus.DRAFT,
                changed_at=created,
                changed_by=subject,
                reason=None,
            )
        ]
        finalized_at = None
        if status is not RecordStatus.DRAFT:
            finalized_at = self.later(created, 10 * _MINUTE, 3 * _DAY)
            events.append(
                record_event(
                    previous_status=RecordStatus.DRAFT,
                    status=RecordStatus.FINALIZED,
                    changed_at=finalized_at,
                    changed_by=subject,
                    reason=None,
                )
            )
            if status is RecordStatus.AMENDED:
                amendments = rng.choice((1, 1, 1, 2))
            elif status is RecordStatus.ENTERED_IN_ERROR:
                amendments = int(rng.random() < 0.3)
            else:
                amendments = 0
            for _ in range(amendments):
                at = self.later(events[-1].changed_at, _HOUR, 60 * _DAY)
                events.append(
                    record_event(
                        previous_status=events[-1].status,
                        status=RecordStatus.AMENDED,
                        changed_at=at,
                        changed_by=subject,
                        reason=rng.choice(_AMEND_REASONS),
                    )
                )
            if status is RecordStatus.ENTERED_IN_ERROR:
                at = self.later(events[-1].changed_at, _HOUR, 30 * _DAY)
                events.append(
                    record_event(
                        previous_status=events[-1].status,
                        status=RecordStatus.ENTERED_IN_ERROR,
                        changed_at=at,
                        changed_by=self.admin_subject,
                        reason=rng.choice(_ERROR_REASONS),
                    )
                )
        self.batch.status_events.extend(events)

        conditions = self.diagnoses(record_id, patient.id, record_type, created, problems)
        primary = conditions[0]
        complaint = primary.complaint
        if record_type is RecordType.FOLLOW_UP:
            complaint = f"Follow-up: {complaint[0].lower()}{complaint[1:]}"
        notes = (
            f"{record_type.value.replace('_', ' ').capitalize()} for "
            f"{primary.description.lower()}. {rng.choice(_PLANS)}"
        )
        vital_signs = None
        if record_type not in _RARELY_VITALS or rng.random() < 0.3:
            vital_signs = self.vital_signs(bmi, base_systolic, height_cm, primary)
        follow_up = None
        if record_type in _FOLLOW_UP_TYPES and rng.random() < 0.4:
            follow_up = (visit + timedelta(days=rng.randint(14, 120))).date()
        self.batch.records.append(
            RecordRow(
                id=record_id,
                tenant_id=self.tenant_id,
                patient_id=patient.id,
                provider_id=provider.id,
                record_type=record_type,
                visit_date=visit,
                chief_complaint=complaint,
                notes=notes,
                vital_signs=_json(vital_signs),
                # In this order: each draws from the generator.
                prescriptions=_json(self.prescriptions(record_type, conditions)),
                lab_results=_json(self.lab_results(record_type)),
                status=status,
                finalized_at=finalized_at,
                follow_up_date=follow_up,
                created_at=created,
                updated_at=events[-1].changed_at,
                version=len(events),
            )
        )
        self.attachments(record_id, patient.id, record_type, visit, created)

    def diagnoses(
        self,
        record_id: uuid.UUID,
        patient_id: uuid.UUID,
        record_type: RecordType,
        created: datetime,
        problems: Sequence[_Condition],
    ) -> list[_Condition]:
        rng = self.rng
        count = rng.randint(1, 3)
        chosen: list[_Condition] = []
        while len(chosen) < count:
            unused = [problem for problem in problems if problem not in chosen]
            pool: Sequence[_Condition]
            if unused and (rng.random() < 0.6 or record_type is RecordType.FOLLOW_UP):
                pool = unused
            else:
                pool = _ACUTE if rng.random() < 0.5 else _CHRONIC
            condition = rng.choice(pool)
            if condition not in chosen:
                chosen.append(condition)
        for position, condition in enumerate(chosen):
            self.batch.diagnoses.append(
                DiagnosisRow(
                    id=self.new_id(),
                    tenant_id=self.tenant_id,
                    record_id=record_id,
                    patient_id=patient_id,
                    icd10_code=condition.code,
                    description=condition.description,
                    type=DiagnosisType.PRIMARY if position == 0 else DiagnosisType.SECONDARY,
                    created_at=created + timedelta(seconds=position + 1),
                )
            )
        return chosen

    def vital_signs(
        self, bmi: float, base_systolic: int, height_cm: float, primary: _Condition
    ) -> dict[str, Any]:
        rng = self.rng
        systolic = max(90, min(185, base_systolic + rng.randint(-12, 12)))
        febrile = not primary.chronic and rng.random() < 0.3
        weight = bmi * (height_cm / 100) ** 2 + rng.uniform(-2.0, 2.0)
        return {
            "systolicBp": systolic,
            "diastolicBp": max(50, min(110, round(systolic * 0.63) + rng.randint(-6, 6))),
            "heartRate": rng.randint(56, 100) + (12 if febrile else 0),
            "respiratoryRate": rng.randint(12, 20) + (2 if febrile else 0),
            "temperatureC": round(
                rng.uniform(37.8, 39.2) if febrile else rng.uniform(36.2, 37.3), 1
            ),
            "oxygenSaturation": rng.randint(93, 100),
            "weightKg": round(weight, 1),
            "heightCm": round(height_cm, 1),
        }

    def prescriptions(
        self, record_type: RecordType, conditions: Sequence[_Condition]
    ) -> list[dict[str, Any]]:
        if record_type in (RecordType.LAB_RESULT, RecordType.IMAGING):
            return []
        rng = self.rng
        result: list[dict[str, Any]] = []
        for condition in conditions:
            if condition.medications and rng.random() < 0.6:
                medication = rng.choice(condition.medications)
                result.append(
                    {
                        "medication": medication.name,
                        "dosage": medication.dosage,
                        "frequency": medication.frequency,
                        "durationDays": medication.duration_days,
                        "notes": "Refill as needed" if condition.chronic else None,
                    }
                )
        return result

    def lab_results(self, record_type: RecordType) -> list[dict[str, Any]]:
        rng = self.rng
        if record_type is RecordType.LAB_RESULT:
            count = rng.randint(3, 6)
        elif rng.random() < 0.2:
            count = rng.randint(1, 2)
        else:
            return []
        results: list[dict[str, Any]] = []
        for test in rng.sample(_LAB_TESTS, count):
            span = test.high - test.low
            if rng.random() < 0.8:
                value = rng.uniform(test.low, test.high)
            else:
                value = max(0.0, rng.uniform(test.low - span * 0.4, test.high + span * 0.4))
            value = round(value, test.decimals)
            results.append(
                {
                    "test": test.name,
                    "value": f"{value:.{test.decimals}f}",
                    "unit": test.unit,
                    "referenceRange": test.reference_range,
                    "abnormal": not test.low <= value <= test.high,
                }
            )
        return results

    def attachments(
        self,
        record_id: uuid.UUID,
        patient_id: uuid.UUID,
        record_type: RecordType,
        visit: datetime,
        created: datetime,
    ) -> None:
        rng = self.rng
        count = self.pick((0, 1, 2), (30, 70, 100))
        for _ in range(count):
            attachment_id = self.new_id()
            stem, kind = rng.choice(_ATTACHMENTS_BY_TYPE[record_type])
            file_name = f"{stem}-{visit.year:04d}{visit.month:02d}{visit.day:02d}.{kind.extension}"
            status = self.pick(_ATTACHMENT_STATUSES, (90, 96, 100))
            attached = self.later(created, _MINUTE, 2 * _HOUR)
            uploaded = None
            updated = attached
            if status is AttachmentStatus.AVAILABLE:
                uploaded = self.later(attached, 5, 5 * _MINUTE)
                updated = uploaded
            elif status is AttachmentStatus.REJECTED:
                updated = self.later(attached, 5, 5 * _MINUTE)
            self.batch.attachments.append(
                AttachmentRow(
                    id=attachment_id,
                    tenant_id=self.tenant_id,
                    record_id=record_id,
                    patient_id=patient_id,
                    file_name=file_name,
                    content_type=kind.content_type,
                    size_bytes=rng.randint(kind.min_bytes, kind.max_bytes),
                    checksum_sha256=f"{rng.getrandbits(256):064x}",
                    status=status,
                    storage_key=attachment_storage_key(
                        self.tenant_id, visit, record_id, attachment_id, file_name
                    ),
                    uploaded_at=uploaded,
                    created_at=attached,
                    updated_at=updated,
                    version=1 if status is AttachmentStatus.PENDING_UPLOAD else 2,
                )
            )


def provider_count(patients: int) -> int:
    return max(1, round(patients / PATIENTS_PER_PROVIDER))


def generate(
    tenant_id: str,
    *,
    patients: int,
    seed: int = 0,
    taken_npis: Iterable[str] = (),
    batch_patients: int = BATCH_PATIENTS,
) -> Iterator[SeedBatch]:
    """The rows ``seed_tenant`` writes, batch by batch, without touching the database.

    A batch is made when the next one is asked for, and the generator keeps none it has given
    out. The rows do not depend on ``batch_patients``, only how they are cut into batches.
    """
    _check_arguments(tenant_id, patients, batch_patients)
    generator = _Generator(tenant_id, seed)
    providers = generator.providers(provider_count(patients), taken_npis)
    generator.batch.providers = list(providers)
    return generator.patients(patients, providers, batch_patients)


def _check_arguments(tenant_id: str, patients: int, batch_patients: int) -> None:
    if not _TENANT_ID.fullmatch(tenant_id):
        raise SeedError(
            f"invalid tenant id {tenant_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if not 1 <= patients <= MAX_PATIENTS:
        raise SeedError(f"patients must be between 1 and {MAX_PATIENTS}, not {patients}")
    if batch_patients < 1:
        raise SeedError(f"batch_patients must be at least 1, not {batch_patients}")


# --- Writing --------------------------------------------------------------------------------------


# Children first, so deleting never trips a foreign key.
_TENANT_TABLES: Final = (
    RecordStatusEvent,
    Attachment,
    Diagnosis,
    MedicalRecord,
    Patient,
    Provider,
)

# The status events of the batches wait here, one partition per month of changed_at, until all
# are written: the identity column numbers events in the order they are inserted, and clients
# page the stream by that number, so they go in by time across the whole tenant. A month at a
# time keeps each statement's sort and pending foreign-key checks a slice of the tenant.
_STAGED_EVENTS: Final = "seed_status_events"
_EVENT_COLUMNS: Final = ", ".join(StatusEventRow._fields)


def _months(first: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The calendar months (UTC) from the one holding ``first`` up to ``end``, a month start."""
    start = datetime(first.year, first.month, 1, tzinfo=UTC)
    months: list[tuple[datetime, datetime]] = []
    while start < end:
        following = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
        months.append((start, following))
        start = following
    return months


# Every event lies after its patient's creation and before the reference instant.
_EVENT_MONTHS: Final = _months(REFERENCE_INSTANT - _OLDEST_PATIENT, REFERENCE_INSTANT)


def _staged_month(start: datetime) -> str:
    return f"{_STAGED_EVENTS}_{start:%Y%m}"


async def _create_staging(connection: AsyncConnection) -> None:
    # Its own identity column (a new sequence) numbers the staged events in the order they were
    # generated: a record's own events in turn, and events at the same instant in the order the
    # stable sort by changed_at this replaced left them.
    await connection.execute(
        text(
            f"CREATE TEMP TABLE {_STAGED_EVENTS} (LIKE record_status_events INCLUDING IDENTITY) "
            "PARTITION BY RANGE (changed_at)"
        )
    )
    for start, end in _EVENT_MONTHS:
        await connection.execute(
            text(
                f"CREATE TEMP TABLE {_staged_month(start)} PARTITION OF {_STAGED_EVENTS} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )


async def _append_staged_events(connection: AsyncConnection) -> None:
    for start, _ in _EVENT_MONTHS:
        await connection.execute(
            text(
                f"INSERT INTO record_status_events ({_EVENT_COLUMNS}) "  # noqa: S608
                f"SELECT {_EVENT_COLUMNS} FROM {_staged_month(start)} "
                "ORDER BY changed_at, sequence"
            )
        )
    await connection.execute(text(f"DROP TABLE {_STAGED_EVENTS}"))


async def _copy(
    driver: Any, table: str, rows: Sequence[tuple[Any, ...]], columns: Sequence[str]
) -> None:
    if rows:
        await driver.copy_records_to_table(table, records=rows, columns=list(columns))


async def _analyze(connection: AsyncConnection, entities: Iterable[type[Any]]) -> None:
    for entity in entities:
        await connection.execute(text(f"ANALYZE {table_of(entity).name}"))


async def seed_tenant(
    session: AsyncSession,
    *,
    tenant_id: str,
    patients: int,
    seed: int = 0,
    replace: bool = False,
    batch_patients: int = BATCH_PATIENTS,
) -> SeedSummary:
    """Insert a deterministic synthetic data set for ``tenant_id``; the caller commits.

    With ``replace`` the tenant's existing rows go first (audit events stay: they are
    append-only); without it a tenant that already has patients is an error. The rows are made
    and written ``batch_patients`` patients at a time (with COPY), so memory does not grow with
    ``patients``; the rows are the same whatever the batch size.
    """
    _check_arguments(tenant_id, patients, batch_patients)
    connection = await session.connection()
    # A bulk load's statements (a batch's COPY, deleting a large tenant) may outlast the limit set
    # for requests; SET LOCAL ends with the caller's transaction.
    await connection.execute(text("SET LOCAL statement_timeout = 0"))
    if replace:
        for entity in _TENANT_TABLES:
            table = table_of(entity)
            await connection.execute(delete(table).where(table.c.tenant_id == tenant_id))
    elif await connection.scalar(select(exists().where(Patient.tenant_id == tenant_id))):
        raise SeedError(
            f"tenant {tenant_id!r} already has patients; seed another tenant or replace its data"
        )
    taken_npis = await connection.scalars(
        select(Provider.npi).where(Provider.tenant_id == tenant_id)
    )
    batches = generate(
        tenant_id,
        patients=patients,
        seed=seed,
        taken_npis=taken_npis.all(),
        batch_patients=batch_patients,
    )
    # COPY on the session's own connection, so inside the caller's transaction.
    driver = (await connection.get_raw_connection()).driver_connection
    await _create_staging(connection)
    counts: Counter[str] = Counter()
    # The next batch is made on a worker thread while PostgreSQL takes this one in: making rows
    # and storing them cost about the same, so each waits on the other no longer than it must.
    # Two batches at most are held: the one written and the one being made.
    loop = asyncio.get_running_loop()
    upcoming = loop.run_in_executor(None, next, batches, None)
    analyzed = False
    while (batch := await upcoming) is not None:
        upcoming = loop.run_in_executor(None, next, batches, None)
        # Parents before children: COPY checks the foreign keys row by row.
        await _copy(driver, "providers", batch.providers, ProviderRow._fields)
        await _copy(driver, "patients", batch.patients, PatientRow._fields)
        if not analyzed:
            # A connection plans each foreign-key check once, at its first row, for the table as
            # it is then: planned on an empty patients table, PostgreSQL 18 found a record's
            # patient by skipping through ix_patients_tenant_provider_created, every patient of
            # the tenant for each record, instead of by its key.
            await _analyze(connection, (Provider, Patient))
        await _copy(driver, "medical_records", batch.records, RecordRow._fields)
        if not analyzed:
            await _analyze(connection, (MedicalRecord,))
            analyzed = True
        await _copy(driver, "diagnoses", batch.diagnoses, DiagnosisRow._fields)
        await _copy(driver, "attachments", batch.attachments, AttachmentRow._fields)
        await _copy(driver, _STAGED_EVENTS, batch.status_events, StatusEventRow._fields)
        counts.update(
            providers=len(batch.providers),
            patients=len(batch.patients),
            records=len(batch.records),
            diagnoses=len(batch.diagnoses),
            attachments=len(batch.attachments),
            status_events=len(batch.status_events),
        )
    await _append_staged_events(connection)
    # Fresh statistics, so the first queries after a bulk load are planned for its real size
    # (autovacuum would get there, minutes later).
    await _analyze(connection, _TENANT_TABLES)
    return SeedSummary(tenant_id=tenant_id, **counts)
