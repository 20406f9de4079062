package vendoroauth

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// The model declares itself once: these tests read the plugin's own source
// and fail where code outside the one place a thing belongs does it
// again.

// sources parses every non-test Go file of the plugin outside the given
// directories (relative to the module root).
func sources(t *testing.T, except ...string) map[string]*ast.File {
	t.Helper()
	out := map[string]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			for _, skip := range append([]string{".git", "e2e", "bench", "internal", "testdata"}, except...) {
				if path == skip {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		out[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// No code outside the model and the presets compares a grant type to a
// name: it asks the grant's row (model.Grant) for the fact it needs.
func TestNoGrantComparisonsOutsideTheModel(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, g := range model.Grants() {
		for _, n := range []string{g.Name, g.Wire} {
			if n != "" {
				names[`"`+n+`"`] = true
			}
		}
	}
	isGrant := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.SelectorExpr:
			// providers.GrantStatic, s.GrantType, gerr.Grant, ...
			return strings.HasPrefix(x.Sel.Name, "Grant")
		case *ast.BasicLit:
			return names[x.Value]
		case *ast.Ident:
			return strings.HasPrefix(x.Name, "Grant")
		}
		return false
	}
	for path, f := range sources(t, "backend/model", "providers", "backend/tokenclient") {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if (x.Op == token.EQL || x.Op == token.NEQ) && (isGrant(x.X) || isGrant(x.Y)) {
					t.Errorf("%s: compares a grant type (%s); ask its model.Grant row instead", path, exprString(x))
				}
			case *ast.CaseClause:
				if slices.ContainsFunc(x.List, isGrant) {
					t.Errorf("%s: a switch case on a grant type; ask its model.Grant row instead", path)
				}
			}
			return true
		})
	}
}

// Only backend/store touches storage: no other code builds a storage entry
// or calls a logical.Storage.
func TestOnlyTheStoreTouchesStorage(t *testing.T) {
	t.Parallel()
	for path, f := range sources(t, "backend/store") {
		storages := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if field, ok := n.(*ast.Field); ok && exprString(field.Type) == "logical.Storage" {
				for _, name := range field.Names {
					storages[name.Name] = true
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CompositeLit:
				if exprString(x.Type) == "logical.StorageEntry" {
					t.Errorf("%s: builds a storage entry; store it through backend/store", path)
				}
			case *ast.CallExpr:
				sel, ok := x.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				recv := exprString(sel.X)
				if i := strings.LastIndexByte(recv, '.'); i >= 0 {
					recv = recv[i+1:]
				}
				switch sel.Sel.Name {
				case "Get", "Put", "Delete", "List", "ListPage":
					if storages[recv] {
						t.Errorf("%s: calls storage (%s.%s); go through backend/store", path, exprString(sel.X), sel.Sel.Name)
					}
				}
			}
			return true
		})
	}
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(x.X)
	case *ast.BasicLit:
		return x.Value
	case *ast.BinaryExpr:
		return exprString(x.X) + " " + x.Op.String() + " " + exprString(x.Y)
	case *ast.CallExpr:
		return exprString(x.Fun) + "(...)"
	}
	return "?"
}
