"""initial schema

Revision ID: b3b6729f5988
Revises: 
Create Date: 2026-11-23 11:22:47.243486
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b3b6729f5988'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('subject', sa.String(length=128), nullable=True),
    sa.Column('roles', postgresql.ARRAY(sa.String(length=16)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('operation_name', sa.String(length=200), nullable=True),
    sa.Column('operation_type', sa.String(length=16), nullable=False),
    sa.Column('query_sha256', sa.String(length=64), nullable=False),
    sa.Column('patient_ids', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('record_ids', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('attachment_ids', postgresql.ARRAY(sa.UUID()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('outcome', sa.Enum('ok', 'denied', 'error', name='audit_outcome'), nullable=False),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_patient_ids', 'audit_events', ['patient_ids'], unique=False, postgresql_using='gin')
    op.create_index('ix_audit_events_tenant_occurred', 'audit_events', ['tenant_id', sa.literal_column('occurred_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('providers',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('npi', sa.String(length=10), nullable=False),
    sa.Column('given_name', sa.String(length=100), nullable=False),
    sa.Column('family_name', sa.String(length=100), nullable=False),
    sa.Column('specialty', sa.String(length=100), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('cognito_sub', sa.String(length=128), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_providers_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'npi', name=op.f('uq_providers_tenant_id_npi'))
    )
    op.create_index('ix_providers_cognito_sub', 'providers', ['cognito_sub'], unique=False)
    op.create_index('ix_providers_tenant_name', 'providers', ['tenant_id', 'family_name', 'given_name', 'id'], unique=False)
    op.create_index('uq_providers_tenant_cognito_sub', 'providers', ['tenant_id', 'cognito_sub'], unique=True, postgresql_where=sa.text('cognito_sub IS NOT NULL'))
    op.create_table('patients',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('given_name', sa.String(length=100), nullable=False),
    sa.Column('family_name', sa.String(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('sex', sa.Enum('FEMALE', 'MALE', 'OTHER', 'UNKNOWN', name='sex'), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('primary_provider_id', sa.UUID(), nullable=True),
    sa.Column('cognito_sub', sa.String(length=128), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'primary_provider_id'], ['providers.tenant_id', 'providers.id'], name=op.f('fk_patients_tenant_id_primary_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_patients_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'mrn', name=op.f('uq_patients_tenant_id_mrn'))
    )
    op.create_index('ix_patients_cognito_sub', 'patients', ['cognito_sub'], unique=False)
    op.create_index('ix_patients_tenant_created', 'patients', ['tenant_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_patients_tenant_family_name_prefix', 'patients', ['tenant_id', sa.literal_column('lower(family_name) text_pattern_ops')], unique=False)
    op.create_index('ix_patients_tenant_given_name_prefix', 'patients', ['tenant_id', sa.literal_column('lower(given_name) text_pattern_ops')], unique=False)
    op.create_index('ix_patients_tenant_mrn_prefix', 'patients', ['tenant_id', sa.literal_column('lower(mrn) text_pattern_ops')], unique=False)
    op.create_index('ix_patients_tenant_provider_created', 'patients', ['tenant_id', 'primary_provider_id', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('uq_patients_tenant_cognito_sub', 'patients', ['tenant_id', 'cognito_sub'], unique=True, postgresql_where=sa.text('cognito_sub IS NOT NULL'))
    op.create_table('medical_records',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.UUID(), nullable=False),
    sa.Column('provider_id', sa.UUID(), nullable=False),
    sa.Column('record_type', sa.Enum('CONSULTATION', 'FOLLOW_UP', 'LAB_RESULT', 'IMAGING', 'PROCEDURE', 'DISCHARGE_SUMMARY', name='record_type'), nullable=False),
    sa.Column('visit_date', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chief_complaint', sa.String(length=500), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('vital_signs', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('prescriptions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('lab_results', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('status', sa.Enum('DRAFT', 'FINALIZED', 'AMENDED', 'ENTERED_IN_ERROR', name='record_status'), server_default='DRAFT', nullable=False),
    sa.Column('finalized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('follow_up_date', sa.Date(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'patient_id'], ['patients.tenant_id', 'patients.id'], name=op.f('fk_medical_records_tenant_id_patient_id_patients')),
    sa.ForeignKeyConstraint(['tenant_id', 'provider_id'], ['providers.tenant_id', 'providers.id'], name=op.f('fk_medical_records_tenant_id_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medical_records')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_medical_records_tenant_id_id'))
    )
    op.create_index('ix_medical_records_tenant_patient_visit', 'medical_records', ['tenant_id', 'patient_id', sa.literal_column('visit_date DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_medical_records_tenant_provider_visit', 'medical_records', ['tenant_id', 'provider_id', sa.literal_column('visit_date DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_medical_records_tenant_status_visit', 'medical_records', ['tenant_id', 'status', sa.literal_column('visit_date DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_medical_records_tenant_type_visit', 'medical_records', ['tenant_id', 'record_type', sa.literal_column('visit_date DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_medical_records_tenant_visit', 'medical_records', ['tenant_id', sa.literal_column('visit_date DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('attachments',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.UUID(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=127), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('checksum_sha256', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('PENDING_UPLOAD', 'AVAILABLE', 'REJECTED', 'DELETED', name='attachment_status'), server_default='PENDING_UPLOAD', nullable=False),
    sa.Column('storage_key', sa.String(length=1024), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'record_id'], ['medical_records.tenant_id', 'medical_records.id'], name=op.f('fk_attachments_tenant_id_record_id_medical_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_attachments_storage_key'))
    )
    op.create_index('ix_attachments_tenant_record', 'attachments', ['tenant_id', 'record_id', 'created_at', 'id'], unique=False)
    op.create_table('diagnoses',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.UUID(), nullable=False),
    sa.Column('icd10_code', sa.String(length=8), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('type', sa.Enum('PRIMARY', 'SECONDARY', name='diagnosis_type'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'record_id'], ['medical_records.tenant_id', 'medical_records.id'], name=op.f('fk_diagnoses_tenant_id_record_id_medical_records'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_diagnoses'))
    )
    op.create_index('ix_diagnoses_tenant_record', 'diagnoses', ['tenant_id', 'record_id', 'created_at', 'id'], unique=False)
    op.create_table('record_status_events',
    sa.Column('sequence', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('record_id', sa.UUID(), nullable=False),
    sa.Column('previous_status', sa.Enum('DRAFT', 'FINALIZED', 'AMENDED', 'ENTERED_IN_ERROR', name='record_status'), nullable=True),
    sa.Column('status', sa.Enum('DRAFT', 'FINALIZED', 'AMENDED', 'ENTERED_IN_ERROR', name='record_status'), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'record_id'], ['medical_records.tenant_id', 'medical_records.id'], name=op.f('fk_record_status_events_tenant_id_record_id_medical_records')),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_record_status_events'))
    )
    op.create_index('ix_record_status_events_tenant_record', 'record_status_events', ['tenant_id', 'record_id', 'sequence'], unique=False)
    op.create_index('ix_record_status_events_tenant_sequence', 'record_status_events', ['tenant_id', 'sequence'], unique=False)

    # The audit trail is append-only in the database itself, whatever the application does.
    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_index('ix_record_status_events_tenant_sequence', table_name='record_status_events')
    op.drop_index('ix_record_status_events_tenant_record', table_name='record_status_events')
    op.drop_table('record_status_events')
    op.drop_index('ix_diagnoses_tenant_record', table_name='diagnoses')
    op.drop_table('diagnoses')
    op.drop_index('ix_attachments_tenant_record', table_name='attachments')
    op.drop_table('attachments')
    op.drop_index('ix_medical_records_tenant_visit', table_name='medical_records')
    op.drop_index('ix_medical_records_tenant_type_visit', table_name='medical_records')
    op.drop_index('ix_medical_records_tenant_status_visit', table_name='medical_records')
    op.drop_index('ix_medical_records_tenant_provider_visit', table_name='medical_records')
    op.drop_index('ix_medical_records_tenant_patient_visit', table_name='medical_records')
    op.drop_table('medical_records')
    op.drop_index('uq_patients_tenant_cognito_sub', table_name='patients', postgresql_where=sa.text('cognito_sub IS NOT NULL'))
    op.drop_index('ix_patients_tenant_provider_created', table_name='patients')
    op.drop_index('ix_patients_tenant_mrn_prefix', table_name='patients')
    op.drop_index('ix_patients_tenant_given_name_prefix', table_name='patients')
    op.drop_index('ix_patients_tenant_family_name_prefix', table_name='patients')
    op.drop_index('ix_patients_tenant_created', table_name='patients')
    op.drop_index('ix_patients_cognito_sub', table_name='patients')
    op.drop_table('patients')
    op.drop_index('uq_providers_tenant_cognito_sub', table_name='providers', postgresql_where=sa.text('cognito_sub IS NOT NULL'))
    op.drop_index('ix_providers_tenant_name', table_name='providers')
    op.drop_index('ix_providers_cognito_sub', table_name='providers')
    op.drop_table('providers')
    op.drop_index('ix_audit_events_tenant_occurred', table_name='audit_events')
    op.drop_index('ix_audit_events_patient_ids', table_name='audit_events', postgresql_using='gin')
    op.drop_table('audit_events')
    for enum_name in (
        "audit_outcome",
        "attachment_status",
        "diagnosis_type",
        "record_status",
        "record_type",
        "sex",
    ):
        op.execute(f"DROP TYPE {enum_name}")
