# Recaps (Catch me up) are charged too: a charge says what it paid for, and a recap has no reply.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0013_mentions'),
    ]

    operations = [
        migrations.AddField(
            model_name='charge',
            name='kind',
            field=models.CharField(choices=[('reply', 'reply'), ('recap', 'recap')], default='reply', max_length=10, verbose_name='spent on'),
        ),
        migrations.AlterField(
            model_name='charge',
            name='reply_id',
            field=models.PositiveBigIntegerField(blank=True, db_index=True, null=True),
        ),
    ]
