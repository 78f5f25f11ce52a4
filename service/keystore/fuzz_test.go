package keystore

import (
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidateID checks that ValidateID accepts exactly the 64-character
// lower-case hex strings, that what it accepts is safe as a file name and an
// object key segment, and that ParseID agrees with it.
func FuzzValidateID(f *testing.F) {
	good := IDOf([]byte("seed"))
	for _, s := range []string{
		"", good, strings.ToUpper(good), good + "0", good[:63], "../" + good[3:],
		good[:31] + "/" + good[32:], good[:63] + "\x00", strings.Repeat(".", 64),
		good[:63] + "g", good[:62] + "é", strings.Repeat("0", 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
		err := ValidateID(s)
		if want != (err == nil) {
			t.Fatalf("ValidateID(%q) = %v, want valid=%v", s, err, want)
		}
		if err != nil && !errors.Is(err, ErrInvalidID) {
			t.Fatalf("ValidateID(%q) = %v, not ErrInvalidID", s, err)
		}
		if err == nil {
			b, derr := hex.DecodeString(s)
			if derr != nil || len(b) != 32 || hex.EncodeToString(b) != s {
				t.Fatalf("valid ID %q is not a canonical hex SHA-256", s)
			}
			if filepath.Base(s) != s || filepath.Clean(s) != s || strings.ContainsAny(s, "/\\.") {
				t.Fatalf("valid ID %q is not a plain path element", s)
			}
		}
		id, perr := ParseID(s)
		lowered := strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'F' {
				return r + ('a' - 'A')
			}
			return r
		}, s)
		if (perr == nil) != (ValidateID(lowered) == nil) {
			t.Fatalf("ParseID(%q) = %v, disagrees with ValidateID of %q", s, perr, lowered)
		}
		if perr == nil && id != lowered {
			t.Fatalf("ParseID(%q) = %q, want %q", s, id, lowered)
		}
	})
}
