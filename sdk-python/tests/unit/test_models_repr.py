"""A model printed or logged never shows a secret value or a credential (spec 8.7.7, 11.6.2)."""

from __future__ import annotations

from secinfra.models import IssueCertificateRequest, PutSecretRequest, Secret


def test_secret_values_show_their_size_only() -> None:
    for model in (
        PutSecretRequest(name="app/db", value=b"hunter2"),
        Secret(name="app/db", version=3, value=b"hunter2"),
    ):
        assert "hunter2" not in repr(model)
        assert "hunter2" not in str(model)
        assert "value=[REDACTED 7 bytes]" in repr(model)
        assert "name='app/db'" in repr(model)  # the rest is shown as before


def test_credentials_are_redacted_and_absent_ones_shown_as_none() -> None:
    for field in ("join_token", "jwt", "oidc_id_token"):
        request = IssueCertificateRequest(csr_pem="-----BEGIN", **{field: "eyJ.secret.sig"})
        assert "eyJ.secret.sig" not in repr(request)
        assert f"{field}=[REDACTED]" in repr(request)
    assert "jwt=None" in repr(IssueCertificateRequest(csr_pem="x", join_token="sjt_x"))
