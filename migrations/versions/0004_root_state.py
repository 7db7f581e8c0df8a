"""root state: the device a root was indexed on, whether it is a file, and offline roots

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:00:00.000000

A root that had pictures and is now missing, empty or on another device (an unmounted
drive) is *offline*: its pictures stay in the library, marked offline, until it is back.
Existing roots get no device until their next successful index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('roots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='folder', nullable=False))
        batch_op.add_column(sa.Column('device', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('offline_since', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('offline_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('roots', schema=None) as batch_op:
        for name in ('offline_reason', 'offline_since', 'device', 'kind'):
            batch_op.drop_column(name)
