package secinfra_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secinfra/secinfra/sdk-go/gen/secinfrav1"
)

func TestStringFormsHideSecretsAndCredentials(t *testing.T) {
	token, jwt := "sjt_id.topsecret", "eyJhbGciOi.payload.sig"
	values := []any{
		&secinfrav1.Secret{Name: "app/db", Version: 3, Value: []byte("hunter2")},
		secinfrav1.PutSecretRequest{Name: "app/db", Value: []byte("hunter2")},
		&secinfrav1.IssueCertificateRequest{CSRPEM: "csr", JoinToken: &token},
		&secinfrav1.IssueCertificateRequest{CSRPEM: "csr", JWT: &jwt},
		&secinfrav1.CreateJoinTokenResponse{Token: token},
	}
	for _, v := range values {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(format, v)
			for _, secret := range []string{"hunter2", token, jwt} {
				if strings.Contains(out, secret) {
					t.Errorf("%s of %T shows %q: %s", format, v, secret, out)
				}
			}
			if !strings.Contains(out, "redacted") {
				t.Errorf("%s of %T does not say what it left out: %s", format, v, out)
			}
		}
	}
}
