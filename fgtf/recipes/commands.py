"""The commands that run recipes, by the name a recipe file gives them
(`command = "train"`): each command module declares its own
`fgtf.recipes.RecipeCommand`, and this table, above them, collects them."""
from fgtf.recipes import RecipeCommand
from fgtf.simtrans.__main__ import RECIPE_COMMAND as SIMTRANS
from fgtf.train import RECIPE_COMMAND as TRAIN

COMMANDS = {command.name: command for command in (TRAIN, SIMTRANS)}


def command_of(recipe) -> RecipeCommand:
    """The `RecipeCommand` that runs `recipe` (a `fgtf.recipes.Recipe`)."""
    return COMMANDS[recipe.command]
