"""One natural-person account per identity document: accounts.document_key (UNIQUE); an index
on legal_rep_document_index for look-ups by a legal representative's document.

``document_key`` is the keyed hash (personal-data index key) of "document type:number" of a
natural person's document; NULL for legal accounts and persons without a document, and NULL
values never clash. Existing rows are filled in here; should two existing accounts already
share a document, the oldest keeps the key, the others stay NULL and are named in a warning
for the operator to resolve (the migration does not fail on old data).

Revision ID: 0003
Revises: 0002
"""
import logging

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('document_key', sa.String(length=64), nullable=True))
    _fill_document_keys()
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('uq_accounts_document_key', ['document_key'], unique=True)
        batch_op.create_index('ix_accounts_legal_rep_document_index', ['legal_rep_document_index'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_legal_rep_document_index')
        batch_op.drop_index('uq_accounts_document_key')
        batch_op.drop_column('document_key')


def _fill_document_keys():
    from idp.accounts.service import document_key  # the application's own rule (and keyring)
    from idp.extensions import services

    keyring = services().keyring
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, document_type, document_number FROM accounts "
        "WHERE account_type = 'natural' AND document_type IS NOT NULL AND document_number IS NOT NULL "
        "ORDER BY id"
    )).all()
    owners: dict[str, int] = {}
    for account_id, document_type, ciphertext in rows:
        number = keyring.decrypt(ciphertext, "accounts.document_number")
        key = document_key(document_type, number)
        if key in owners:
            log.warning("accounts %s and %s hold the same document; %s keeps no document_key",
                        owners[key], account_id, account_id)
            continue
        owners[key] = account_id
        bind.execute(sa.text("UPDATE accounts SET document_key = :key WHERE id = :id"),
                     {"key": key, "id": account_id})
