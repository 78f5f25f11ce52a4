package server

import (
	"bytes"
	"encoding/json"
	"io"
)

func jsonMarshal(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
