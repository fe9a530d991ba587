"""Encryption at rest: the key encryption key (KEK) and envelope encryption.

Pure synchronous code: no storage, no HTTP. Typical use::

    keyring = Keyring(load_kek(config.kek_path))
    box = seal(keyring, value, aad_for_secret(name, version))
    # store box.kek_id, box.wrapped_key, box.ciphertext in the row
    value = open_(keyring, box, aad_for_secret(name, version))

Every secret version and every CA private key is encrypted with its own
AES-256-GCM data key; the data key is wrapped by the KEK, and the AAD binds both
to the row they belong to. KEK rotation re-wraps data keys only (:func:`rewrap`).
File format, ids and rotation are described in the ``_kek`` and ``_envelope``
module docstrings.

Errors::

    CryptoError                 base; code set per subclass
    ├── DecryptionError         internal
    └── KekError                failed_precondition
        └── InsecureKekFile
"""

from ._audit_key import (
    AUDIT_KEY_ENV_VAR,
    AuditKey,
    AuditKeyError,
    generate_audit_key_file,
    load_audit_key,
    load_audit_key_from_env,
)
from ._envelope import (
    CIPHERTEXT_OVERHEAD,
    FORMAT_VERSION,
    WRAPPED_KEY_SIZE,
    SealedBox,
    aad_for_ca_key,
    aad_for_idempotent_response,
    aad_for_secret,
    open_,
    rewrap,
    seal,
)
from ._errors import CryptoError, DecryptionError, InsecureKekFile, KekError
from ._kek import (
    KEK_ENV_VAR,
    KEK_SIZE,
    Kek,
    Keyring,
    fsync_dir,
    generate_kek_file,
    load_kek,
    load_kek_from_env,
)

__all__ = [
    "AUDIT_KEY_ENV_VAR",
    "CIPHERTEXT_OVERHEAD",
    "FORMAT_VERSION",
    "KEK_ENV_VAR",
    "KEK_SIZE",
    "WRAPPED_KEY_SIZE",
    "AuditKey",
    "AuditKeyError",
    "CryptoError",
    "DecryptionError",
    "InsecureKekFile",
    "Kek",
    "KekError",
    "Keyring",
    "SealedBox",
    "aad_for_ca_key",
    "aad_for_idempotent_response",
    "aad_for_secret",
    "fsync_dir",
    "generate_audit_key_file",
    "generate_kek_file",
    "load_audit_key",
    "load_audit_key_from_env",
    "load_kek",
    "load_kek_from_env",
    "open_",
    "rewrap",
    "seal",
]
