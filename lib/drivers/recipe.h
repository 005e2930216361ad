/* Recipes: a server described by a small INI file instead of C
 * (docs/drivers.md is the reference).  A loaded recipe is a struct
 * tether_driver whose hooks read the recipe. */
#pragma once
#include "driver.h"

struct recipe;

/* The recipes compiled in from data/drivers (NAME.ini) into builtin_recipes.c
 * (made by embed_recipes.py at build time). */
struct builtin_recipe {
    const char *name;
    const char *text;
};
extern const struct builtin_recipe builtin_recipes[];
extern const size_t n_builtin_recipes;
/* The "file" a compiled-in recipe's messages name. */
#define BUILTIN_RECIPE_PREFIX "(built-in)/"

/* Read the recipe `name` from path / from text (named path in messages).
 * Errors: every one of the file, "FILE:LINE: ..." a line (-EINVAL). */
int recipe_load(const char *path, const char *name, struct recipe **out, terr *e);
int recipe_parse(const char *path, const char *name, const char *text, size_t len,
                 struct recipe **out, terr *e);
void recipe_free(struct recipe *r);

const struct tether_driver *recipe_driver(const struct recipe *r);
/* The recipe behind a driver, NULL for a C one. */
const struct recipe *recipe_of(const struct tether_driver *d);
const char *recipe_path(const struct recipe *r);
const char *recipe_description(const struct recipe *r);
