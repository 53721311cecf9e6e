"""`python -m fgtf.recipes` (`fgtf recipes`): list the published experiments'
recipes, or show one resolved through the command that runs it."""
import argparse

from fgtf.recipes import __doc__ as RECIPES_HELP
from fgtf.recipes import describe, list_recipes, load_recipe, recipe_table
from tfrecord_tools.cli import cli_main


@cli_main
def main(argv=None):
    from fgtf.cli import DocHelpFormatter

    parser = argparse.ArgumentParser(prog="python -m fgtf.recipes", description=RECIPES_HELP,
                                     formatter_class=DocHelpFormatter)
    parser.add_argument("recipe", nargs="?", metavar="NAME_OR_PATH",
                        help="show this recipe resolved (default: list every recipe of recipes/)")
    parser.add_argument("--differs", action="store_true",
                        help="in the list, each recipe's differences from its original under its row")
    args = parser.parse_args(argv)
    if args.recipe is None:
        print(recipe_table([load_recipe(name) for name in list_recipes()], differs=args.differs))
    else:
        # Imported here: resolving a recipe needs its command's parser (and so the command), listing them does not.
        from fgtf.recipes.commands import command_of

        recipe = load_recipe(args.recipe)
        print(describe(recipe, command_of(recipe)))


if __name__ == "__main__":
    main()
