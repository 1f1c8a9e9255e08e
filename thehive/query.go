package thehive

// Op is one operation of a v1 query: {"_name": "listCase"}, a filter, a
// sort, a page, ... (thehive.md §2.2). Build them with the helpers below.
type Op map[string]any

// Expr is a filter expression in the _field/_value form TheHive documents
// (thehive.md §2.3), e.g. {"_gte": {"_field": "_createdAt", "_value": 1}}.
type Expr = map[string]any

// ListCase starts a query over every case visible to the key.
func ListCase() Op { return Op{"_name": "listCase"} }

// GetCase starts a query at one case, by id ("~123") or number ("34").
func GetCase(idOrName string) Op { return Op{"_name": "getCase", "idOrName": idOrName} }

// Observables steps from a case to its observables.
func Observables() Op { return Op{"_name": "observables"} }

// ListObservable starts a query over every visible observable.
func ListObservable() Op { return Op{"_name": "listObservable"} }

// Count ends a query with an exact count; the answer is a bare number.
func Count() Op { return Op{"_name": "count"} }

// Filter keeps the rows matching expr. The expression's operator sits
// beside "_name" in the same object, as TheHive expects.
func Filter(expr Expr) Op {
	op := Op{"_name": "filter"}
	for k, v := range expr {
		op[k] = v
	}
	return op
}

// Sort orders by field, "asc" unless dir says "desc". TheHive's parser reads
// "_fields" (the OpenAPI prose says "fields"; its examples and ScalliGraph
// say "_fields").
func Sort(field string, dir ...string) Op {
	d := "asc"
	if len(dir) > 0 && dir[0] != "" {
		d = dir[0]
	}
	return Op{"_name": "sort", "_fields": []any{map[string]string{field: d}}}
}

// Page keeps rows [from, to): from inclusive, to exclusive.
func Page(from, to int) Op { return Op{"_name": "page", "from": from, "to": to} }

// PageWithTotal is Page asking for the X-Total header, which TheHive caps
// (query.limitedCountThreshold): display only, never a loop bound.
func PageWithTotal(from, to int) Op {
	op := Page(from, to)
	op["extraData"] = []string{"total"}
	return op
}

func compareExpr(op, field string, v any) Expr {
	return Expr{op: map[string]any{"_field": field, "_value": v}}
}

// Eq, Ne, Gt, Gte, Lt and Lte compare field with v.
func Eq(field string, v any) Expr  { return compareExpr("_eq", field, v) }
func Ne(field string, v any) Expr  { return compareExpr("_ne", field, v) }
func Gt(field string, v any) Expr  { return compareExpr("_gt", field, v) }
func Gte(field string, v any) Expr { return compareExpr("_gte", field, v) }
func Lt(field string, v any) Expr  { return compareExpr("_lt", field, v) }
func Lte(field string, v any) Expr { return compareExpr("_lte", field, v) }

// Between matches from <= field < to (both bounds mandatory).
func Between(field string, from, to any) Expr {
	return Expr{"_between": map[string]any{"_field": field, "_from": from, "_to": to}}
}

// In matches when field equals one of vals.
func In(field string, vals ...any) Expr {
	if vals == nil {
		vals = []any{}
	}
	return Expr{"_in": map[string]any{"_field": field, "_values": vals}}
}

// Has matches when field is set.
func Has(field string) Expr { return Expr{"_has": field} }

// And, Or and Not combine expressions.
func And(exprs ...Expr) Expr { return Expr{"_and": nonNil(exprs)} }
func Or(exprs ...Expr) Expr  { return Expr{"_or": nonNil(exprs)} }
func Not(expr Expr) Expr     { return Expr{"_not": expr} }

func nonNil(exprs []Expr) []Expr {
	if exprs == nil {
		return []Expr{}
	}
	return exprs
}
