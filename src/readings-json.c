/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "macro.h"
#include "readings-json.h"

json_t *reading_value_json(const struct renogy_reading *r)
{
        switch (r->type) {
        case RV_NUMBER:
                if (r->decimals == 0)
                        return json_integer((json_int_t)r->number);
                return json_real(r->number);
        case RV_TEXT:
                return json_string(r->text);
        case RV_BITS: {
                json_t *list = json_array();
                for (unsigned b = 0; b < 32; b++) {
                        if (!(r->bits & (1u << b)))
                                continue;
                        const struct renogy_field *f = r->field;
                        if (b < f->n_names && f->names[b])
                                json_array_append_new(list, json_string(f->names[b]));
                        else {
                                char name[16];
                                snprintf(name, sizeof name, "bit_%u", b);
                                json_array_append_new(list, json_string(name));
                        }
                }
                return list;
        }
        }
        return json_null();
}

static bool json_array_contains_string(const json_t *list, const char *s)
{
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) if (streq(json_string_value(v) ?: "", s)) return true;
        return false;
}

static const char *field_kind_name(uint8_t kind)
{
        static const char *const names[] = {
                [KIND_NUMBER] = "number",
                [KIND_ENUM] = "enum",
                [KIND_BITS] = "bits",
                [KIND_FLAG] = "flag",
                [KIND_TEXT] = "text",
        };
        return kind < ELEMENTSOF(names) && names[kind] ? names[kind] : "text";
}

/* The bits of a status word that are alarms, protections or faults: a client shows them as
 * problems, and the others as plain states. */
static json_t *problem_names_json(const struct renogy_field *f)
{
        json_t *list = json_array();
        for (unsigned i = 0; i < f->n_names; i++)
                if (f->names[i] && !(f->state_bits & (1u << i)))
                        json_array_append_new(list, json_string(f->names[i]));
        return list;
}

/* Every name an enum may take or a bit field may set, so that a client can make its entities
 * before the value shows them. */
static json_t *field_names_json(const struct renogy_field *f)
{
        json_t *list = json_array();
        for (unsigned i = 0; i < f->n_names; i++)
                if (f->names[i] && !json_array_contains_string(list, f->names[i]))
                        json_array_append_new(list, json_string(f->names[i]));
        return list;
}

json_t *readings_json(const struct renogy_readings *r, bool full)
{
        json_t *obj = json_object();
        for (size_t i = 0; i < r->n; i++) {
                const struct renogy_field *f = r->r[i].field;
                json_t *o = json_object();
                json_object_set_new(o, "value", reading_value_json(&r->r[i]));
                if (f->unit)
                        json_object_set_new(o, "unit", json_string(f->unit));
                if (full) {
                        json_object_set_new(o, "kind", json_string(field_kind_name(f->kind)));
                        if (r->r[i].type == RV_NUMBER)
                                json_object_set_new(o, "precision", json_integer(r->r[i].decimals));
                        if (f->kind == KIND_ENUM || f->kind == KIND_BITS)
                                json_object_set_new(
                                        o, f->kind == KIND_ENUM ? "options" : "bits", field_names_json(f));
                        if (f->kind == KIND_BITS)
                                json_object_set_new(o, "problem_bits", problem_names_json(f));
                        json_object_set_new(o, "label", json_string(f->label));
                        json_object_set_new(o, "device_class",
                                f->device_class ? json_string(f->device_class) : json_null());
                        json_object_set_new(o, "state_class",
                                f->state_class ? json_string(f->state_class) : json_null());
                }
                json_object_set_new(obj, f->key, o);
        }
        return obj;
}

int hex_decode(const char *hex, uint8_t *out, size_t out_size)
{
        size_t n = 0;
        int hi = -1;
        for (const char *p = hex; *p; p++) {
                if (isspace((unsigned char)*p))
                        continue;
                if (!isxdigit((unsigned char)*p))
                        return -EINVAL;
                int v = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
                if (hi < 0) {
                        hi = v;
                        continue;
                }
                if (n >= out_size)
                        return -EMSGSIZE;
                out[n++] = (uint8_t)(hi << 4 | v);
                hi = -1;
        }
        if (hi >= 0)
                return -EINVAL;
        return (int)n;
}
