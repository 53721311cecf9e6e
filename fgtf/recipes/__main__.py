"""`python -m fgtf.recipes` (`fgtf recipes`): list the published experiments'
recipes, or show one resolved through the command that runs it."""

from fgtf.recipes import __doc__ as RECIPES_HELP
from fgtf.recipes import command_of, describe, list_recipes, load_recipe, recipe_table
from fgtf.command_line import cli_main, command_parser


@cli_main
def main(argv=None):
    parser = command_parser(__name__, RECIPES_HELP)
    parser.add_argument("recipe", nargs="?", metavar="NAME_OR_PATH",
                        help="show this recipe resolved (default: list every recipe of recipes/)")
    parser.add_argument("--differs", action="store_true",
                        help="in the list, each recipe's differences from its original under its row")
    args = parser.parse_args(argv)
    if args.recipe is None:
        print(recipe_table([load_recipe(name) for name in list_recipes()], differs=args.differs))
    else:
        recipe = load_recipe(args.recipe)
        print(describe(recipe, command_of(recipe)))


if __name__ == "__main__":
    main()
