/* SPDX-License-Identifier: MIT */
#pragma once

/* Renogy device families as data: register maps (one table row per reading), the register
 * blocks one poll reads, and one generic decoder that walks a table. Pure: no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum renogy_raw {
        RAW_U8_HI, /* high byte of the register */
        RAW_U8_LO, /* low byte of the register */
        RAW_U16,
        RAW_U24,     /* byte-addressed families only */
        RAW_U32,     /* high word first */
        RAW_ASCII,   /* len bytes, padding (spaces, NULs) stripped */
        RAW_VERSION, /* 4 bytes, byte 0 unused: "V1.2.3" */
        RAW_HEX,     /* len bytes shown as upper-case hex */
        RAW_NONE,    /* derived from other readings */
};

enum renogy_sign {
        SIGN_NONE,
        SIGN_TWOS,      /* two's complement of the raw width */
        SIGN_MAGNITUDE, /* bit 7 sign, bits 0-6 magnitude (one byte) */
};

enum renogy_kind {
        KIND_NUMBER, /* raw / 10^decimals */
        KIND_ENUM,   /* names[raw], or "unknown(N)" */
        KIND_BITS,   /* list of names[bit] for each set bit */
        KIND_FLAG,   /* "on" if bit is set, else "off" */
        KIND_TEXT,   /* RAW_ASCII, RAW_VERSION, RAW_HEX */
};

enum {
        FIELD_FFFF_UNAVAILABLE = 1 << 0, /* 0xFFFF means "not available": report nothing */
        FIELD_CELL_AUTO = 1 << 1,        /* raw < 100 is 0.1 V, otherwise mV */
        FIELD_PRO_TENTHS = 1 << 2,       /* in 0.1 units on a family's Pro variant (RENOGY_BLE.md §8 P8) */
};

struct renogy_field {
        const char *key;
        const char *label;
        const char *unit;         /* NULL when unitless */
        const char *device_class; /* Home Assistant device_class, or NULL */
        const char *state_class;  /* "measurement", "total_increasing", or NULL */
        uint16_t addr;            /* register, or byte offset in byte-addressed families */
        uint8_t raw;
        uint8_t sign;
        uint8_t kind;
        uint8_t decimals;
        uint8_t bit; /* KIND_FLAG */
        uint8_t len; /* RAW_ASCII / RAW_HEX bytes */
        uint8_t flags;
        uint8_t index; /* with count_addr: reported only if index <= count */
        uint16_t count_addr;
        uint32_t mask; /* applied to the raw value first; 0 = none */
        /* KIND_BITS: the bits that tell a state (a MOSFET on, fully charged), not a problem;
         * every other named bit is an alarm, protection or fault. */
        uint32_t state_bits;
        const char *const *names;
        uint8_t n_names;
};

struct renogy_block {
        uint16_t reg;
        uint16_t count;
        /* Identity (a model string) that some firmware never answers: read after every live
         * block of the module, and its silence costs nothing but itself (RENOGY_BLE.md §8 P3,
         * P5). */
        bool optional;
        /* Settings (always optional too): what a write may change, read back after it. Like
         * identity, asked at the first poll and then only every few minutes. */
        bool settings;
};

enum renogy_value_type {
        RV_NUMBER,
        RV_TEXT,
        RV_BITS,
};

#define RENOGY_MAX_READINGS 96
#define RENOGY_TEXT_MAX     48

struct renogy_reading {
        const struct renogy_field *field;
        enum renogy_value_type type;
        double number;
        uint8_t decimals;
        uint32_t bits;
        char text[RENOGY_TEXT_MAX];
};

struct renogy_readings {
        struct renogy_reading r[RENOGY_MAX_READINGS];
        size_t n;
};

/* What a decoder sees: the data of one or more replies, placed in byte address space
 * (register × 2 for Modbus families, frame offset for byte-addressed ones). */
#define RENOGY_IMAGE_SEGMENTS 16
struct renogy_image {
        struct {
                uint32_t base;
                uint16_t len;
                uint8_t data[256];
        } seg[RENOGY_IMAGE_SEGMENTS];
        size_t n;
};

struct renogy_family {
        const char *name; /* controller, dcc, battery, inverter, shunt */
        const char *label;
        bool byte_addressed;
        uint8_t default_id;
        const struct renogy_field *fields;
        size_t n_fields;
        const struct renogy_block *blocks;
        size_t n_blocks;
        /* Readings computed from other readings (percentages, power). */
        void (*derive)(const struct renogy_family *f, struct renogy_readings *out);
        /* A variant of another family: the same table and blocks, other scales. */
        const struct renogy_family *base;
        const char *variant; /* "pro"; NULL for a family of its own */
};

extern const struct renogy_family renogy_controller, renogy_dcc, renogy_battery, renogy_inverter,
        renogy_shunt, renogy_battery_pro, renogy_inverter_riv4835, renogy_inverter_hf, renogy_dcc_g6;

/* The family a variant belongs to (itself for a family of its own). */
static inline const struct renogy_family *renogy_family_base(const struct renogy_family *f)
{
        return f->base ? f->base : f;
}
/* The decimals of a field as this family (or variant) reports it. */
uint8_t renogy_field_decimals(const struct renogy_family *fam, const struct renogy_field *f);

/* Which battery a module holds, from what it shows of itself (RENOGY_BLE.md §4.3 variants):
 * Battery Pro (advertised or model name RNGRBP…, RNGC…: current in 0.1 A) or the standard
 * scales (legacy packs, RNGPRO…: 0.01 A). Either string may be NULL or empty. why gets the
 * reason in words. */
const struct renogy_family *renogy_battery_variant(
        const char *advertised_name, const char *model, char *why, size_t why_size);

/* The variant of a family a module holds — its register map, poll plan and scales — from its
 * advertised name and its model (reported, or named in the configuration when the firmware
 * does not report it); either may be NULL or empty. Battery Pro (§8 P8), the RIV4835's plan
 * (§3, §8 P4), the HF inverter-charger's map (§8 P1), the DC-DC G6's blocks (§4.2). why gets the
 * choice and its reason in words. */
const struct renogy_family *renogy_family_variant(const struct renogy_family *base,
        const char *advertised_name, const char *model, char *why, size_t why_size);

/* Whether a field's register lies in the block (derived readings lie in none). */
static inline bool renogy_field_in_block(const struct renogy_field *f, const struct renogy_block *b)
{
        return f->raw != RAW_NONE && f->addr >= b->reg && f->addr < b->reg + b->count;
}

const struct renogy_family *renogy_family_find(const char *name);
const struct renogy_family *const *renogy_families(size_t *n);
const struct renogy_field *renogy_field_find(const struct renogy_family *f, const char *key);

void renogy_image_init(struct renogy_image *img);
/* Adds the data words of a read reply that started at register reg. */
int renogy_image_add_words(struct renogy_image *img, uint16_t reg, const uint8_t *data, size_t n_words);
/* Adds bytes at a byte address (byte-addressed families). */
int renogy_image_add_bytes(struct renogy_image *img, uint32_t base, const uint8_t *data, size_t n);

/* Walks the family's table over the image: every field whose bytes are present is decoded,
 * then derived readings are added. Returns the number of readings. */
int renogy_decode(
        const struct renogy_family *f, const struct renogy_image *img, struct renogy_readings *out);

const struct renogy_reading *renogy_readings_get(const struct renogy_readings *r, const char *key);
int renogy_reading_add_number(
        struct renogy_readings *out, const struct renogy_field *f, double v, uint8_t decimals);

/* Rounds v to the given number of decimals, half away from zero. */
double renogy_round(double v, unsigned decimals);
/* 10^n, exact up to n = 22. */
double renogy_pow10(unsigned n);
/* v × 10^decimals rounded half away from zero, as an integer; INT64_MAX when that is out of
 * range or v is not a number. */
int64_t renogy_scaled(double v, unsigned decimals);

/* The inverse of the decoder for one field: writes the raw encoding of value (a number, an
 * enum index or bit mask) into the image bytes. Used by the simulator to hold its registers in
 * the same maps the daemon decodes with. Returns 0 or -ERANGE/-EINVAL. */
int renogy_encode_number(const struct renogy_family *fam, const struct renogy_field *f, double value,
        uint8_t *bytes, size_t bytes_len);
int renogy_encode_text(const struct renogy_field *f, const char *text, uint8_t *bytes, size_t bytes_len);
/* Byte address of a field and how many bytes it spans. */
uint32_t renogy_field_byte_addr(const struct renogy_family *fam, const struct renogy_field *f);
size_t renogy_field_width(const struct renogy_field *f);

/* Guess a family from an advertised name: inverter, shunt, battery, or NULL (a BT-TH module
 * can carry any family). */
const char *renogy_family_from_name(const char *name);
