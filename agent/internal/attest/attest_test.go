package attest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"testing"

	"github.com/secinfra/secinfra/agent/internal/attest"
)

func TestSelectorsOfThisProcess(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	caller := attest.Caller{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	got := attest.Selectors(caller, "/proc")
	want := []string{
		"unix:uid:" + strconv.Itoa(os.Getuid()),
		"unix:gid:" + strconv.Itoa(os.Getgid()),
		"unix:path:" + self,
		"unix:sha256:" + hex.EncodeToString(sum[:]),
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("selector %d = %s, want %s", i, got[i], want[i])
		}
	}
}

func TestSelectorsOfAGoneProcessHaveNoBinary(t *testing.T) {
	got := attest.Selectors(attest.Caller{PID: 1 << 30, UID: 7, GID: 8}, "/proc")
	if len(got) != 2 || got[0].String() != "unix:uid:7" || got[1].String() != "unix:gid:8" {
		t.Fatalf("got %v, want only uid and gid", got)
	}
}
