package server_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/service/api"
)

// The OpenAPI file describes exactly the server's routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile("../../docs/openapi.yaml")
	require.NoError(t, err)
	pathRe := regexp.MustCompile(`^  (/[^:]*):\s*$`)
	opRe := regexp.MustCompile(`^    (get|put|post|delete|patch|head):`)
	var doc []string
	cur := ""
	inPaths := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "paths:") {
			inPaths = true
			continue
		}
		if !inPaths {
			continue
		}
		if m := pathRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
		} else if m := opRe.FindStringSubmatch(line); m != nil {
			doc = append(doc, strings.ToUpper(m[1])+" "+cur)
		}
	}
	var routes []string
	for _, r := range api.Routes {
		routes = append(routes, r.Pattern())
	}
	sort.Strings(doc)
	sort.Strings(routes)
	require.Equal(t, routes, doc)
}
